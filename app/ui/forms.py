"""HTML form fields from a JSON Schema: what the browser can check, it checks; the server
checks the rest (its 422 messages are shown beside the form)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class FormField:
    name: str
    label: str
    kind: str  # text | number | integer | checkbox | select | json
    required: bool
    description: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    options: list[str] = field(default_factory=list)
    default: str = ""


def _attrs(prop: dict[str, Any]) -> dict[str, str]:
    """Constraints HTML validates itself; anything else is left to the server."""
    mapping = {
        "minLength": "minlength",
        "maxLength": "maxlength",
        "pattern": "pattern",
        "minimum": "min",
        "maximum": "max",
    }
    out = {html: str(prop[key]) for key, html in mapping.items() if key in prop}
    if prop.get("type") == "number":
        out["step"] = "any"
    return out


def _kind(prop: dict[str, Any]) -> str:
    if "enum" in prop and all(isinstance(v, str) for v in prop["enum"]):
        return "select"
    kind = prop.get("type")
    if kind == "string":
        return "text"
    if kind in ("number", "integer"):
        return str(kind)
    if kind == "boolean":
        return "checkbox"
    return "json"


def _default(prop: dict[str, Any], kind: str) -> str:
    if "default" not in prop:
        return ""
    value = prop["default"]
    if kind == "json":
        return json.dumps(value)
    if kind == "checkbox":
        return "true" if value else ""
    return str(value)


def schema_fields(schema: Any) -> list[FormField] | None:
    """One field per top-level property; None when the schema is not an object with
    properties (the form then takes the whole value as JSON)."""
    if not isinstance(schema, dict):
        return None
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        return None
    required = set(schema.get("required") or [])
    fields = []
    for name, prop in props.items():
        prop = prop if isinstance(prop, dict) else {}
        kind = _kind(prop)
        fields.append(
            FormField(
                name=str(name),
                label=str(prop.get("title") or name),
                kind=kind,
                required=name in required,
                description=prop.get("description"),
                attrs=_attrs(prop) if kind in ("text", "number", "integer") else {},
                options=[str(v) for v in prop.get("enum", [])] if kind == "select" else [],
                default=_default(prop, kind),
            )
        )
    # Required properties the schema lists without describing still get a field.
    for name in sorted(required - set(props)):
        fields.append(FormField(name=str(name), label=str(name), kind="json", required=True))
    return fields
