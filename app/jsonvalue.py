"""The one JSON rule: what a step output, a request value or a stored column may hold (pure).

A JSON value is null, a boolean, a finite number, a string, an array or an object with string
keys, nested at most `max_depth` levels. Strings may not hold NUL (Postgres refuses it) nor
lone surrogates (they have no UTF-8 form). Two things are normalised rather than refused,
as `json.dumps` does: tuples become arrays and integer keys become strings. Everything else
(NaN, ±Infinity, sets, bytes, complex numbers, Ellipsis, other objects) is `NotJSON`."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

DEFAULT_MAX_DEPTH = 64
# Python cannot write an int of more than 4,300 digits as text; keep well under it.
MAX_INT_BITS = 14_000
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")

Path = tuple[str | int, ...]


class NotJSON(ValueError):
    """A value that JSON cannot carry or the database cannot store; `path` locates it."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(self.describe())

    def describe(self, root: str = "(value)") -> str:
        """`v: NaN is not valid JSON`; `root` names the value itself when the path is empty."""
        return f"{path_text(self.path) or root}: {self.reason}"


def path_text(path: Path) -> str:
    """`a.b[2].c` (empty for the value itself)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _string_problem(text: str) -> str | None:
    bad = _BAD_CHAR.search(text)
    if bad is None:
        return None
    if bad.group() == "\x00":
        return "a string may not contain NUL (\\u0000)"
    return f"a string may not contain a lone surrogate (\\u{ord(bad.group()):04x})"


def _scalar(value: Any, path: Path) -> Any:
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        name = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        raise NotJSON(path, f"{name} is not valid JSON")
    if isinstance(value, int):  # bool included
        if value.bit_length() > MAX_INT_BITS:
            raise NotJSON(path, "the integer is too large")
        return value
    if isinstance(value, str):
        problem = _string_problem(value)
        if problem is not None:
            raise NotJSON(path, problem)
        return value
    if value is None:
        return None
    kind = "Ellipsis" if value is Ellipsis else type(value).__name__
    raise NotJSON(path, f"{kind} is not valid JSON")


def _key(key: Any, path: Path) -> str:
    if isinstance(key, str):
        problem = _string_problem(key)
        if problem is not None:
            # The path goes into messages that are stored: name the bad key by its escapes.
            shown = _BAD_CHAR.sub(lambda m: f"\\u{ord(m.group()):04x}", key)
            raise NotJSON((*path, shown), problem)
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise NotJSON(path, f"an object key must be a string, not {type(key).__name__}")


def normalise(value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH, path: Path = ()) -> Any:
    """The JSON form of `value` (tuples as lists); raises NotJSON naming the first bad path.

    A value that is JSON already (the usual case) is returned as it is, after one quick
    pass; only the others are walked again, copied, and located."""
    if _plain(value, max_depth):
        return value
    return _walk(value, max_depth, path)


def _plain_str(text: str) -> bool:
    if text.isascii():
        return "\x00" not in text
    return _BAD_CHAR.search(text) is None


def _plain(value: Any, depth_left: int) -> bool:
    """True when `value` is JSON as it stands: plain dicts, lists and scalars only."""
    kind = type(value)
    if kind is str:
        return _plain_str(value)
    if kind is int:
        return bool(value.bit_length() <= MAX_INT_BITS)
    if kind is float:
        return math.isfinite(value)
    if value is None or kind is bool:
        return True
    if depth_left <= 0:
        return False
    if kind is dict:
        for key, child in value.items():
            if type(key) is not str or not _plain_str(key) or not _plain(child, depth_left - 1):
                return False
        return True
    if kind is list:
        return all(_plain(child, depth_left - 1) for child in value)
    return False


def _walk(value: Any, depth_left: int, path: Path) -> Any:
    if isinstance(value, Mapping):
        if depth_left <= 0:
            raise NotJSON(path, "nested too deeply")
        out: dict[str, Any] = {}
        for key, child in value.items():
            name = _key(key, path)
            out[name] = _walk(child, depth_left - 1, (*path, name))
        return out
    if isinstance(value, list | tuple):
        if depth_left <= 0:
            raise NotJSON(path, "nested too deeply")
        return [_walk(child, depth_left - 1, (*path, i)) for i, child in enumerate(value)]
    return _scalar(value, path)


def check(value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH, path: Path = ()) -> None:
    """Raise NotJSON unless `value` is JSON as it stands."""
    normalise(value, max_depth=max_depth, path=path)


def dumps(value: Any) -> str:
    """Compact JSON text of a value already normalised; NotJSON if it slipped through anyway.

    Every writer (both databases, events, Redis) encodes through here, so none can disagree."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        _locate(value)
        raise NotJSON((), str(exc)) from exc
    # `\u0000` is how json writes NUL; a surrogate is written as itself (ensure_ascii=False).
    # A string holding a backslash and "u0000" as text also matches: `_locate` lets it pass.
    if "\\u0000" in text or _BAD_CHAR.search(text):
        _locate(value)
    return text


def _locate(value: Any) -> None:
    """Raise NotJSON naming where `value` breaks the rule, if it does."""
    try:
        check(value, max_depth=10_000)
    except RecursionError:
        raise NotJSON((), "nested too deeply") from None
