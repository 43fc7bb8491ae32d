"""Generated documentation: `python -m app.docgen` writes it, `--check` fails on drift.

docs/nodes.md comes whole from the node types' params models; docs/lifecycle.md is prose
with the transition table between markers, rendered from `app.engine.status`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from app.docnotes import OUTPUTS, PARAM_NOTES
from app.engine.status import TERMINAL, TRANSITIONS, Status
from app.nodes.catalog import NodeTypeInfo, describe_all
from app.nodes.registry import default_registry

BEGIN = "<!-- BEGIN GENERATED: {name} (python -m app.docgen) -->"
END = "<!-- END GENERATED: {name} -->"


class DocsOutOfDate(RuntimeError):
    """The generated docs differ from what the code says, or the notes no longer fit."""


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_text(schema: dict[str, Any]) -> str:
    """A JSON Schema written as a short type, e.g. `integer or null`, `array of integer`."""
    if "$ref" in schema:
        return _ref_name(schema["$ref"])
    if "enum" in schema:
        return ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(type_text(s) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items") or {}
        return f"array of {type_text(items)}" if items else "array"
    if kind == "object":
        extra = schema.get("additionalProperties")
        return f"object of {type_text(extra)}" if isinstance(extra, dict) and extra else "object"
    return str(kind) if kind else "any"


_BOUNDS = (
    ("minimum", "≥ {}"),
    ("maximum", "≤ {}"),
    ("minLength", "length ≥ {}"),
    ("maxLength", "length ≤ {}"),
    ("minItems", "≥ {} items"),
    ("maxItems", "≤ {} items"),
    ("pattern", "matches `{}`"),
)


def bounds_text(schema: dict[str, Any]) -> str:
    parts: list[str] = []
    for branch in [schema, *schema.get("anyOf", []), schema.get("items") or {}]:
        for key, text in _BOUNDS:
            if key in branch:
                value = branch[key]
                shown = f"{value:,}" if isinstance(value, int) and key != "pattern" else value
                parts.append(text.format(shown))
    return ", ".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def params_table(
    schema: dict[str, Any], notes: dict[str, str], *, type_name: str, strict: bool
) -> list[str]:
    """One row per param: name, type, required or default, bounds, meaning."""
    properties: dict[str, dict[str, Any]] = schema.get("properties", {})
    if strict and set(notes) != set(properties):
        raise DocsOutOfDate(
            f"app/docnotes.py PARAM_NOTES['{type_name}'] names {sorted(notes)} but the params "
            f"model has {sorted(properties)}"
        )
    if not properties:
        return []
    required = set(schema.get("required", []))
    rows = ["| param | type | required / default | bounds | meaning |", "|---|---|---|---|---|"]
    for name, prop in properties.items():
        need = "required" if name in required else f"`{json.dumps(prop.get('default'))}`"
        if name not in required and "default" not in prop:
            need = "optional"
        meaning = notes.get(name) or prop.get("description", "")
        cells = [f"`{name}`", _cell(type_text(prop)), need, _cell(bounds_text(prop)), meaning]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _facts(info: NodeTypeInfo) -> str:
    counted = [
        label
        for flag, label in (
            (info.external, "an external call"),
            (info.loop, "a loop"),
            (info.human, "human input"),
        )
        if flag
    ]
    estimate = "its own `ms`" if info.name == "delay" else f"{info.estimated_duration_ms:g} ms"
    kinds = ", ".join(counted) if counted else "nothing special"
    return f"Complexity: counts as {kinds}; estimated duration {estimate}."


def node_section(info: NodeTypeInfo, *, strict: bool) -> list[str]:
    notes = PARAM_NOTES.get(info.name)
    if strict and notes is None:
        raise DocsOutOfDate(f"app/docnotes.py has no PARAM_NOTES for node type '{info.name}'")
    lines = [f"## `{info.name}`", "", info.description, ""]
    if info.name in OUTPUTS:
        lines += [f"Output: {OUTPUTS[info.name]}.", ""]
    lines += [_facts(info), ""]
    table = params_table(
        info.params_schema, notes or {}, type_name=info.name, strict=notes is not None
    )
    if table:
        lines += ["Params:", "", *table, ""]
    elif info.params_schema.get("additionalProperties") is True:
        lines += ["Params: any object; every string in it may be a template.", ""]
    for name, sub in info.params_schema.get("$defs", {}).items():
        lines += [f"`{name}`: {sub.get('description', '')}", ""]
        sub_notes = PARAM_NOTES.get(name)
        table = params_table(sub, sub_notes or {}, type_name=name, strict=sub_notes is not None)
        lines += [*table, ""]
    lines += [
        "<details><summary>JSON Schema of params</summary>",
        "",
        "```json",
        json.dumps(info.params_schema, indent=2, ensure_ascii=False),
        "```",
        "",
        "</details>",
        "",
    ]
    return lines


NODES_INTRO = """\
# Node types

Generated from the params models by `python -m app.docgen`; do not edit by hand (a unit test
compares this file with the code). The running service lists the same, plugins included, at
`GET /node-types`.

Every node of a workflow is `{"id", "type", "params", ...}` (see [workflows.md](workflows.md)).
A param's value may be a `{{ expression }}` template (see [expressions.md](expressions.md)):
it is checked against the type when the step runs, with its value, and a mismatch fails the
step with `params_invalid`. Literal values are checked at validation (`422 bad_params`).
Unknown params are refused. Complexity facts feed the analyzer that picks the mode (README,
"The two modes").

Plugins add types through the entry-point group `turnout.nodes`: a class with `name`,
`params_model` (a pydantic model), `async run(ctx, params)`, and optionally `external`,
`loop`, `human` (booleans), `estimate_ms(params)` and `output_model`.
"""


def render_nodes(types: Iterable[Any] | None = None) -> str:
    """docs/nodes.md for the built-in node types (installed plugins are left out)."""
    infos = describe_all(types if types is not None else default_registry(plugins=False))
    lines = [NODES_INTRO]
    lines += ["| type | counts as | does |", "|---|---|---|"]
    for info in infos:
        flags = {"external": info.external, "loop": info.loop, "human": info.human}
        counted = ", ".join(name for name, on in flags.items() if on) or "-"
        link = f"[`{info.name}`](#{_anchor(info.name)})"
        lines.append(f"| {link} | {counted} | {info.description} |")
    lines.append("")
    for info in infos:
        lines += node_section(info, strict=True)
    return "\n".join(lines).rstrip() + "\n"


def _anchor(name: str) -> str:
    return name.replace(".", "")


def render_transitions() -> str:
    """The transition table of `app.engine.status`, one row per status."""
    rows = ["| from | may go to | terminal |", "|---|---|---|"]
    for status in Status:
        targets = ", ".join(f"`{t}`" for t in Status if t in TRANSITIONS[status]) or "-"
        rows.append(f"| `{status}` | {targets} | {'yes' if status in TERMINAL else 'no'} |")
    return "\n".join(rows)


def replace_block(text: str, name: str, body: str) -> str:
    begin, end = BEGIN.format(name=name), END.format(name=name)
    head, found, rest = text.partition(begin)
    if not found or end not in rest:
        raise DocsOutOfDate(f"markers for '{name}' are missing")
    return f"{head}{begin}\n{body}\n{end}{rest.partition(end)[2]}"


Renderer = Callable[[str], str]


def renderers() -> dict[str, Renderer]:
    """File name under docs/ -> a function of its current text giving the expected text."""
    return {
        "nodes.md": lambda _: render_nodes(),
        "lifecycle.md": lambda text: replace_block(text, "transitions", render_transitions()),
    }


def expected(docs: Path) -> dict[Path, str]:
    out: dict[Path, str] = {}
    for name, render in renderers().items():
        path = docs / name
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        out[path] = render(current)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.docgen", description=__doc__)
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="the docs directory")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file would change")
    args = parser.parse_args(argv)
    try:
        wanted = expected(args.docs)
    except DocsOutOfDate as exc:
        print(f"docgen: {exc}", file=sys.stderr)
        return 1
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text("utf-8") != text]
    if args.check:
        for path in stale:
            print(f"docgen: {path} is out of date; run python -m app.docgen", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path], encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
