"""The expression language (safe simpleeval under a work budget) and `{{ }}` templates.

Below both `workflows` (which compiles definitions) and `nodes` (which evaluate conditions):
it imports neither."""
