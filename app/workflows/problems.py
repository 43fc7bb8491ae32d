"""What is wrong with a workflow or its input, and where (each problem names its field)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.jsonschemas import SchemaUnusable, validate

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a workflow or its input, and where."""

    loc: Loc
    code: str
    message: str
    node_id: str | None = None
    cycle: tuple[str, ...] = ()  # for code "cycle": the node ids around it

    def to_dict(self) -> dict[str, Any]:
        out = {
            "loc": list(self.loc),
            "field": _field(self.loc),
            "code": self.code,
            "message": self.message,
            "nodeId": self.node_id,
        }
        if self.cycle:
            out["cycle"] = list(self.cycle)
        return out


def _field(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not out:
            out = part
        else:
            out += f".{part}" if part.isidentifier() else f"[{part!r}]"
    return out


def validate_input(schema: dict[str, Any] | None, data: Any) -> list[Problem]:
    """Every way `data` breaks the JSON Schema (Draft 2020-12, formats checked)."""
    if schema is None:
        return []
    try:
        errors = validate(schema, data)
    except SchemaUnusable as exc:
        return [
            Problem(("inputSchema",), "invalid_schema", f"inputSchema cannot be used: it {exc}")
        ]
    return [Problem(("input", *e.absolute_path), "invalid_input", e.message) for e in errors]
