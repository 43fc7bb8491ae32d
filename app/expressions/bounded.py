"""The bounds of an expression, and simpleeval's operators and functions made to keep them."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import simpleeval

# Scope names that are not node ids; `item`/`index` exist only inside a foreach template.
RESERVED_NAMES = frozenset({"input", "item", "index", "execution"})
MAX_EXPRESSION_CHARS = 10_000
MAX_RENDERED_CHARS = 1_000_000  # a text template's output
MAX_RESULT_SIZE = 1_000_000  # values (string characters count) in a computed result
MAX_DEPTH = 100  # AST levels: keeps evaluation far from Python's recursion limit
MAX_INT_BITS = 13_000  # under Python's 4,300-digit limit, so results can be written as JSON
STR_LIMIT = simpleeval.MAX_STRING_LENGTH

Path = tuple[str | int, ...]
Scope = Mapping[str, Any]
Render = Callable[[Scope], Any]


class ExpressionSyntaxError(ValueError):
    """An expression cannot be compiled; `path` locates it inside a template value."""

    def __init__(self, expression: str, message: str, path: Path = ()) -> None:
        self.expression = expression
        self.message = message
        self.path = path
        super().__init__(f"bad expression '{clip(expression)}': {message}")


class Failure(simpleeval.InvalidExpression):  # type: ignore[misc]
    """An evaluation failure whose message is already clear to a user."""


class LimitExceeded(Failure):
    """The evaluation needed more work (CPU) or memory than it may use."""


LIMIT_ERRORS = (LimitExceeded, simpleeval.IterableTooLong, simpleeval.NumberTooHigh, MemoryError)


def clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def kind_name(value: Any) -> str:
    """JSON names for Python types, for messages users read."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


_CONTAINERS = (Mapping, list, tuple, set, frozenset)
_LEAVES = frozenset({int, float, bool, type(None)})


def value_size(value: Any, limit: int) -> int:
    """How many values `value` holds (strings count their characters); stops past `limit`."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, _CONTAINERS):
        return 1
    total = 0
    stack = [value]
    while stack and total <= limit:
        current = stack.pop()
        for child in current.values() if isinstance(current, Mapping) else current:
            kind = type(child)  # exact types first: ABC isinstance costs ~0.5 µs per value
            if kind in _LEAVES:
                total += 1
            elif kind is str:
                total += max(1, len(child))
            elif isinstance(child, _CONTAINERS) and child:
                stack.append(child)
            else:
                total += 1
            if total > limit:
                break
    return total


# Operators and functions: simpleeval's, with tighter bounds where a result could explode.


def _mult(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int):
        if a.bit_length() + b.bit_length() > MAX_INT_BITS:
            raise simpleeval.NumberTooHigh(f"a product over {MAX_INT_BITS} bits is too large")
        return a * b
    seq, times = (a, b) if isinstance(b, int) else (b, a)
    # Counts nested values too, so `[[1] * 99999] * 99999` is refused.
    if isinstance(times, int) and times > 0 and times * value_size(seq, STR_LIMIT) > STR_LIMIT:
        raise simpleeval.IterableTooLong(f"repeating a value {times} times makes it too long")
    return a * b


def _power(a: Any, b: Any) -> Any:
    # A lower bound of the result's bits; `evaluate` checks the final size exactly.
    big = isinstance(a, int) and isinstance(b, int) and abs(a) > 1 and b * (a.bit_length() - 1)
    if big and big > MAX_INT_BITS:
        raise simpleeval.NumberTooHigh(f"a power over {MAX_INT_BITS} bits is too large")
    return simpleeval.safe_power(a, b)


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str | bytes):  # "%0999999999d" % 1 would build a 1 GB string
        raise Failure("'%' formatting of strings is not supported")
    return a % b


def _sum(values: Iterable[Any], start: Any = 0) -> Any:
    items = [start, *values]
    if not all(isinstance(v, int | float) for v in items):  # sum() of lists could explode
        raise Failure("sum() adds numbers only")
    return sum(items)


def _round(number: Any, ndigits: int | None = None) -> Any:
    if ndigits is not None and abs(ndigits) > 1000:  # round(5, -10**9) computes 10**10**9
        raise Failure("round() takes at most 1000 digits")
    return round(number, ndigits)


def bounded_str(value: Any = "") -> str:
    if not isinstance(value, str) and value_size(value, MAX_RENDERED_CHARS) > MAX_RENDERED_CHARS:
        raise Failure("str() argument is too large")
    return str(value)


def _bounded_replace(text: str) -> Callable[..., str]:
    def replace(old: str, new: str, count: int = -1) -> str:
        hits = text.count(old) if count < 0 else min(count, text.count(old))
        growth = hits * (len(new) - len(old))
        if growth > 0 and len(text) + growth > STR_LIMIT:
            raise simpleeval.IterableTooLong("replace() result is too long")
        return text.replace(old, new, count)

    return replace


def _bounded_join(separator: str) -> Callable[[Iterable[Any]], str]:
    def join(items: Iterable[Any]) -> str:
        parts = list(items)
        total = sum(len(p) for p in parts if isinstance(p, str)) + len(separator) * len(parts)
        if total > STR_LIMIT:
            raise simpleeval.IterableTooLong("join() result is too long")
        return separator.join(parts)

    return join


OPERATORS: dict[type, Any] = {
    **simpleeval.DEFAULT_OPERATORS,
    ast.Mult: _mult,
    ast.Pow: _power,
    ast.Mod: _mod,
}
FUNCTIONS: dict[str, Any] = {
    **{f.__name__: f for f in (len, min, max, abs, int, float, bool, sorted, any, all)},
    "round": _round,
    "sum": _sum,
    "str": bounded_str,
}
# EvalWithCompoundTypes adds list/tuple/dict/set constructors itself.
FUNCTION_NAMES = frozenset({*FUNCTIONS, "list", "tuple", "dict", "set"})

# Read-only attributes only: list.append would mutate step outputs, str.ljust(10**9) explode.
_STR_ATTRS = frozenset(simpleeval.BASIC_ALLOWED_ATTRS[str]) - {
    *("center", "ljust", "rjust", "zfill", "expandtabs", "encode"),
    *("format", "format_map", "maketrans", "translate", "replace", "join"),
}
_NUMBER_ATTRS = frozenset(
    {"as_integer_ratio", "bit_length", "conjugate", "denominator", "imag", "numerator", "real"}
)
ALLOWED_ATTRS: dict[type, frozenset[str]] = {
    str: _STR_ATTRS,
    int: _NUMBER_ATTRS,
    bool: _NUMBER_ATTRS,
    float: _NUMBER_ATTRS | {"is_integer", "hex"},
    list: frozenset({"index", "count"}),
    tuple: frozenset({"index", "count"}),
    set: frozenset({"union", "intersection", "difference", "issubset", "issuperset"}),
}
BOUNDED_STR_METHODS: dict[str, Callable[[str], Any]] = {
    "replace": _bounded_replace,
    "join": _bounded_join,
}
PRIMITIVES = frozenset({int, float, str, bool, type(None)})
SPEC_NUMBER = re.compile(r"\d+")


def lookup_message(container: Any, key: Any, where: str, exc: Exception) -> str:
    if isinstance(exc, KeyError) and isinstance(container, Mapping):
        return f"no key {key!r} in {where}"
    if isinstance(exc, IndexError):
        return f"index {key!r} is out of range for {where} (length {len(container)})"
    return f"cannot read {key!r} of {where}: it is {kind_name(container)}"
