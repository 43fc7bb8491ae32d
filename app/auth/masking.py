"""Secrets' values masked as `***` wherever they would appear (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
# `{{ secrets.NAME }}` or `{{ secrets['NAME'] }}` inside a template's expressions.
EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.S)
REFERENCE = re.compile(r"\bsecrets\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*['\"]([^'\"]+)['\"]\s*\])")


def secret_references(value: Any) -> set[str]:
    """Every secret name a definition's templates read."""
    found: set[str] = set()
    if isinstance(value, str):
        if "secrets" not in value:  # the common case, without a regex pass
            return found
        for expression in EXPRESSION.findall(value):
            found.update(a or b for a, b in REFERENCE.findall(expression))
    elif isinstance(value, Mapping):
        for item in value.values():
            found |= secret_references(item)
    elif isinstance(value, list):
        for item in value:
            found |= secret_references(item)
    return found


class Masker:
    """Replaces every known secret value, longest first, in strings, keys and nested values."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        # A peer may echo a value URL-encoded (in a path or query), so those forms go too.
        forms = {f for v in values if v for f in _encodings(v)}
        unique = sorted(forms, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, unique))) if unique else None

    def __bool__(self) -> bool:
        return self.pattern is not None

    def mask(self, value: Any) -> Any:
        if self.pattern is None:
            return value
        if isinstance(value, str):
            return self.pattern.sub(MASK, value)
        if isinstance(value, Mapping):
            return {self.mask(k): self.mask(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask(v) for v in value]
        return value


# The characters different clients leave unescaped in a path or a query.
SAFE_SETS = ("", "/", "/+", "!$'()*+,;:@/?")


def _encodings(value: str) -> set[str]:
    return {value, quote_plus(value), *(quote(value, safe=safe) for safe in SAFE_SETS)}
