"""Who may do what: API keys, scopes, namespaces (pure; no I/O)."""
