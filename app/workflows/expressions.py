"""Safe expressions and `{{ }}` templates, evaluated by simpleeval (never `eval`/`exec`)."""

from __future__ import annotations

import ast
import json
import keyword
import re
import threading
import time
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import simpleeval

from app.errors import ExpressionError

# Scope names that are not node ids; `item`/`index` exist only inside a foreach template.
RESERVED_NAMES = frozenset({"input", "item", "index", "execution"})
MAX_EXPRESSION_CHARS = 10_000
MAX_RENDERED_CHARS = 1_000_000  # a text template's output
MAX_RESULT_SIZE = 1_000_000  # values (string characters count) in a computed result
MAX_DEPTH = 100  # AST levels: keeps evaluation far from Python's recursion limit
MAX_INT_BITS = 13_000  # under Python's 4,300-digit limit, so results can be written as JSON
MAX_EVAL_SECONDS = 1.0
_STR_LIMIT = simpleeval.MAX_STRING_LENGTH

Path = tuple[str | int, ...]
Scope = Mapping[str, Any]
Render = Callable[[Scope], Any]


class ExpressionSyntaxError(ValueError):
    """An expression cannot be compiled; `path` locates it inside a template value."""

    def __init__(self, expression: str, message: str, path: Path = ()) -> None:
        self.expression = expression
        self.message = message
        self.path = path
        super().__init__(f"bad expression '{_clip(expression)}': {message}")


class _Failure(simpleeval.InvalidExpression):  # type: ignore[misc]
    """An evaluation failure whose message is already clear to a user."""


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _kind(value: Any) -> str:
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


def _size(value: Any, limit: int) -> int:
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
            if isinstance(child, str):
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
    if isinstance(times, int) and times > 0 and times * _size(seq, _STR_LIMIT) > _STR_LIMIT:
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
        raise _Failure("'%' formatting of strings is not supported")
    return a % b


def _sum(values: Iterable[Any], start: Any = 0) -> Any:
    items = [start, *values]
    if not all(isinstance(v, int | float) for v in items):  # sum() of lists could explode
        raise _Failure("sum() adds numbers only")
    return sum(items)


def _round(number: Any, ndigits: int | None = None) -> Any:
    if ndigits is not None and abs(ndigits) > 1000:  # round(5, -10**9) computes 10**10**9
        raise _Failure("round() takes at most 1000 digits")
    return round(number, ndigits)


def _str(value: Any = "") -> str:
    if not isinstance(value, str) and _size(value, MAX_RENDERED_CHARS) > MAX_RENDERED_CHARS:
        raise _Failure("str() argument is too large")
    return str(value)


def _bounded_replace(text: str) -> Callable[..., str]:
    def replace(old: str, new: str, count: int = -1) -> str:
        hits = text.count(old) if count < 0 else min(count, text.count(old))
        growth = hits * (len(new) - len(old))
        if growth > 0 and len(text) + growth > _STR_LIMIT:
            raise simpleeval.IterableTooLong("replace() result is too long")
        return text.replace(old, new, count)

    return replace


def _bounded_join(separator: str) -> Callable[[Iterable[Any]], str]:
    def join(items: Iterable[Any]) -> str:
        parts = list(items)
        total = sum(len(p) for p in parts if isinstance(p, str)) + len(separator) * len(parts)
        if total > _STR_LIMIT:
            raise simpleeval.IterableTooLong("join() result is too long")
        return separator.join(parts)

    return join


_OPERATORS: dict[type, Any] = {
    **simpleeval.DEFAULT_OPERATORS,
    ast.Mult: _mult,
    ast.Pow: _power,
    ast.Mod: _mod,
}
_FUNCTIONS: dict[str, Any] = {
    **{f.__name__: f for f in (len, min, max, abs, int, float, bool, sorted, any, all)},
    "round": _round,
    "sum": _sum,
    "str": _str,
}
# EvalWithCompoundTypes adds list/tuple/dict/set constructors itself.
FUNCTION_NAMES = frozenset({*_FUNCTIONS, "list", "tuple", "dict", "set"})

# Read-only attributes only: list.append would mutate step outputs, str.ljust(10**9) explode.
_STR_ATTRS = frozenset(simpleeval.BASIC_ALLOWED_ATTRS[str]) - {
    *("center", "ljust", "rjust", "zfill", "expandtabs", "encode"),
    *("format", "format_map", "maketrans", "translate", "replace", "join"),
}
_NUMBER_ATTRS = frozenset(
    {"as_integer_ratio", "bit_length", "conjugate", "denominator", "imag", "numerator", "real"}
)
_ALLOWED_ATTRS: dict[type, frozenset[str]] = {
    str: _STR_ATTRS,
    int: _NUMBER_ATTRS,
    bool: _NUMBER_ATTRS,
    float: _NUMBER_ATTRS | {"is_integer", "hex"},
    list: frozenset({"index", "count"}),
    tuple: frozenset({"index", "count"}),
    set: frozenset({"union", "intersection", "difference", "issubset", "issuperset"}),
}
_BOUNDED_STR_METHODS: dict[str, Callable[[str], Any]] = {
    "replace": _bounded_replace,
    "join": _bounded_join,
}
_PRIMITIVES = frozenset({int, float, str, bool, type(None)})
_SPEC_NUMBER = re.compile(r"\d+")


def _lookup_message(container: Any, key: Any, where: str, exc: Exception) -> str:
    if isinstance(exc, KeyError) and isinstance(container, Mapping):
        return f"no key {key!r} in {where}"
    if isinstance(exc, IndexError):
        return f"index {key!r} is out of range for {where} (length {len(container)})"
    return f"cannot read {key!r} of {where}: it is {_kind(container)}"


class _Evaluator(simpleeval.EvalWithCompoundTypes):  # type: ignore[misc]
    """simpleeval with JSON semantics: `a.b` reads key `b` of a mapping, never a method."""

    def __init__(self) -> None:
        super().__init__(operators=dict(_OPERATORS), functions=dict(_FUNCTIONS), names={})
        self.deadline = 0.0
        self.ticks = 0
        self.busy = False

    def _eval(self, node: ast.AST) -> Any:
        self.ticks += 1
        if not self.ticks & 0xFF and time.monotonic() > self.deadline:
            raise _Failure(f"took longer than {MAX_EVAL_SECONDS:g} s")
        try:
            handler = self.nodes[type(node)]
        except KeyError:
            raise _Failure(f"{type(node).__name__} is not supported") from None
        result = handler(node)
        if type(result) not in _PRIMITIVES:
            self._check_disallowed_items(result)
        return result

    def _check_disallowed_items(self, item: Any) -> None:
        # Shallow on purpose: containers only hold JSON data or values already checked when
        # they were evaluated, and the upstream deep walk costs O(size) per AST node.
        if isinstance(item, types.ModuleType):
            raise simpleeval.FeatureNotAvailable("modules are not allowed")
        if callable(item):
            try:
                forbidden = item in simpleeval.DISALLOW_FUNCTIONS
            except TypeError:
                forbidden = True
            if forbidden:
                raise simpleeval.FeatureNotAvailable("this function is not allowed")

    def _eval_name(self, node: ast.Name) -> Any:
        try:
            return self.names[node.id]
        except KeyError:
            pass
        if node.id in self.functions:
            return self.functions[node.id]
        raise _Failure(f"name '{node.id}' is not defined")

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        attr = node.attr
        if attr.startswith("__"):
            raise _Failure(f"access to '{attr}' is not allowed")
        base = self._eval(node.value)
        if isinstance(base, Mapping):
            try:
                return base[attr]
            except KeyError:
                raise _Failure(f"no key '{attr}' in {ast.unparse(node.value)}") from None
        if isinstance(base, str) and attr in _BOUNDED_STR_METHODS:
            return _BOUNDED_STR_METHODS[attr](base)
        if attr not in _ALLOWED_ATTRS.get(type(base), ()):
            where = ast.unparse(node.value)
            raise _Failure(f"{where} is {_kind(base)}, which has no attribute '{attr}'")
        return getattr(base, attr)

    def _eval_subscript(self, node: ast.Subscript) -> Any:
        container = self._eval(node.value)
        key = self._eval(node.slice)
        try:
            return container[key]
        except (KeyError, IndexError, TypeError) as exc:
            where = ast.unparse(node.value)
            raise _Failure(_lookup_message(container, key, where, exc)) from None

    def _eval_formattedvalue(self, node: ast.FormattedValue) -> Any:
        value = self._eval(node.value)
        if not isinstance(value, str) and _size(value, _STR_LIMIT) > _STR_LIMIT:
            raise simpleeval.IterableTooLong("value is too large for an f-string")
        if node.format_spec is None:
            return value
        spec = str(self._eval(node.format_spec))
        if any(int(n) > 1000 for n in _SPEC_NUMBER.findall(spec)):
            raise _Failure(f"format width or precision too large in '{spec}'")
        return format(value, spec)


_local = threading.local()
_EMPTY: Scope = types.MappingProxyType({})


def _evaluate_tree(tree: ast.expr, source: str, scope: Scope) -> Any:
    # simpleeval keeps names on the instance: one evaluator per thread, names set per call
    # (building an evaluator costs ~17 µs, more than most evaluations).
    evaluator: _Evaluator | None = getattr(_local, "evaluator", None)
    if evaluator is None:
        evaluator = _local.evaluator = _Evaluator()
    if evaluator.busy:  # re-entered from inside an evaluation: never share the state
        evaluator = _Evaluator()
    evaluator.busy = True
    evaluator.names = scope
    evaluator.ticks = 0
    evaluator.deadline = time.monotonic() + MAX_EVAL_SECONDS
    try:
        return evaluator.eval(source, previously_parsed=tree)
    finally:
        evaluator.names = _EMPTY  # do not keep a finished run's outputs alive
        evaluator.busy = False


_SLOW = object()  # the fast path gives up: evaluate with simpleeval instead
PathSteps = tuple[tuple[str | int, bool], ...]  # (key, written as `.attr`)


def _follow(root: str, steps: PathSteps, scope: Scope) -> Any:
    """Evaluate `a.b[0]["c"]` without simpleeval: most references are plain paths."""
    try:
        value = scope[root]
    except KeyError:
        raise _Failure(f"name '{root}' is not defined") from None
    for n, (key, is_attr) in enumerate(steps):
        if is_attr and not isinstance(value, Mapping):
            return _SLOW
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError) as exc:
            where = root + "".join(f".{k}" if a else f"[{k!r}]" for k, a in steps[:n])
            raise _Failure(_lookup_message(value, key, where, exc)) from None
    return value


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled expression: parsed once, evaluated against many scopes."""

    source: str
    names: frozenset[str]  # root names it reads: node ids and reserved names
    _tree: ast.expr | None = field(default=None, repr=False, compare=False)
    _path: tuple[str, PathSteps] | None = field(default=None, repr=False, compare=False)

    def evaluate(self, scope: Scope) -> Any:
        """The value of the expression; any failure is an `ExpressionError` naming it."""
        try:
            if self._path is not None:
                value = _follow(*self._path, scope)
                if value is not _SLOW:
                    return value
            tree = self._tree if self._tree is not None else _parse(self.source)
            value = _evaluate_tree(tree, self.source, scope)
            if type(value) is int and value.bit_length() > MAX_INT_BITS:
                raise _Failure(f"result is over {MAX_INT_BITS} bits")
            if type(value) not in _PRIMITIVES:
                if callable(value):
                    raise _Failure("a function or method is not a value; call it")
                if _size(value, MAX_RESULT_SIZE) > MAX_RESULT_SIZE:
                    raise _Failure(f"result holds more than {MAX_RESULT_SIZE} values")
            return value
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, RecursionError):
                reason = "nested too deeply"
            raise ExpressionError(
                f"expression '{_clip(self.source)}' failed: {reason}", {"expression": self.source}
            ) from exc


_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_KEY = r"""-?(?:0|[1-9][0-9]*)|"[^"\\\n]*"|'[^'\\\n]*'"""
_PATH = rf"{_IDENT}(?:\.{_IDENT}|\[(?:{_KEY})\])*"
_PATH_RE = re.compile(_PATH)
_DOTTED_RE = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")
_KEYWORDS = frozenset(keyword.kwlist)
_NOT_ROOTS = _KEYWORDS | FUNCTION_NAMES
_STEP_RE = re.compile(rf"\.({_IDENT})|\[({_KEY})\]")
_WHOLE_DOTTED_RE = re.compile(rf"\s*\{{\{{\s*({_IDENT}(?:\.{_IDENT})*)\s*\}}\}}\s*")


def _key(literal: str) -> str | int:
    return literal[1:-1] if literal[0] in "'\"" else int(literal)


def _match_path(source: str) -> tuple[str, PathSteps] | None:
    """Split `a.b[0]["c"]` into its root and steps; None for anything else."""
    if "__" in source:
        return None  # let the parser report dunder access
    if _DOTTED_RE.fullmatch(source):  # the common case: `a.b.c`
        root, *attrs = source.split(".")
        steps: PathSteps = tuple([(a, True) for a in attrs])
    elif _PATH_RE.fullmatch(source):
        root = source[: min(i for i in (source.find("."), source.index("[")) if i >= 0)]
        found = _STEP_RE.findall(source, len(root))
        attrs = [attr for attr, _ in found if attr]
        steps = tuple((a, True) if a else (_key(k), False) for a, k in found)
    else:
        return None
    if root in _NOT_ROOTS or not _KEYWORDS.isdisjoint(attrs):
        return None
    return root, steps


@lru_cache(maxsize=4096)
def _parse(source: str) -> ast.expr:
    return ast.parse(source, mode="eval").body


_ALLOWED_NODES = frozenset(
    {*_Evaluator().nodes, *_OPERATORS, ast.Load, ast.Store, ast.And, ast.Or, ast.Starred}
) - {ast.Expr, ast.Assign, ast.AugAssign, ast.Import}
_COMPREHENSIONS = (ast.ListComp, ast.GeneratorExp, ast.DictComp)


Child = tuple[ast.AST, frozenset[str], bool]  # node, comprehension-bound names, is a base


def _inspect(tree: ast.expr, source: str) -> frozenset[str]:
    """Check the syntax is supported and return the root names it reads (iteratively)."""
    names: set[str] = set()
    stack: list[tuple[ast.AST, frozenset[str], bool, int]] = [(tree, frozenset(), False, 1)]
    while stack:
        node, bound, is_base, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionSyntaxError(source, f"nested deeper than {MAX_DEPTH} levels")
        if type(node) not in _ALLOWED_NODES:
            raise ExpressionSyntaxError(source, f"{type(node).__name__} is not supported")
        if isinstance(node, ast.Name):
            # A function name read as `sum.total` can only be a node id.
            if node.id not in bound and (is_base or node.id not in FUNCTION_NAMES):
                names.add(node.id)
            continue
        stack += [(child, b, base, depth + 1) for child, b, base in _children(node, bound, source)]
    return frozenset(names)


def _children(node: ast.AST, bound: frozenset[str], source: str) -> list[Child]:
    if isinstance(node, ast.Attribute):
        if node.attr.startswith("__"):
            raise ExpressionSyntaxError(source, f"access to '{node.attr}' is not allowed")
        return [(node.value, bound, True)]
    if isinstance(node, ast.Subscript):
        return [(node.value, bound, True), (node.slice, bound, False)]
    if isinstance(node, ast.Call):
        args: list[ast.AST] = [*node.args, *node.keywords]
        if isinstance(node.func, ast.Attribute):
            args.append(node.func)
        elif not isinstance(node.func, ast.Name):
            raise ExpressionSyntaxError(source, "only functions and methods can be called")
        elif node.func.id not in FUNCTION_NAMES:
            known = ", ".join(sorted(FUNCTION_NAMES))
            raise ExpressionSyntaxError(
                source, f"unknown function '{node.func.id}' (available: {known})"
            )
        return [(arg, bound, False) for arg in args]
    if isinstance(node, _COMPREHENSIONS):
        gens = node.generators
        inner = bound | {n.id for g in gens for n in ast.walk(g.target) if isinstance(n, ast.Name)}
        if any(g.is_async for g in gens):
            raise ExpressionSyntaxError(source, "async comprehensions are not supported")
        results = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        parts = [*results, *(p for g in gens for p in (g.target, g.iter, *g.ifs))]
        # The first iterable is read outside the comprehension's own names.
        return [(p, bound if p is gens[0].iter else inner, False) for p in parts]
    return [(child, bound, False) for child in ast.iter_child_nodes(node)]


def compile_expression(text: str) -> Expression:
    """Compile a bare expression (`condition.expr`, `when`); raises ExpressionSyntaxError."""
    if not isinstance(text, str):
        raise ExpressionSyntaxError(repr(text), "an expression must be a string")
    return _compile(text)


@lru_cache(maxsize=8192)
def _compile(text: str) -> Expression:
    source = text.strip()
    if not source:
        raise ExpressionSyntaxError(text, "the expression is empty")
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionSyntaxError(source, f"longer than {MAX_EXPRESSION_CHARS} characters")
    path = _match_path(source)
    if path is not None:
        return Expression(source, frozenset({path[0]}), None, path)
    try:
        tree = _parse(source)
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise ExpressionSyntaxError(source, f"{exc.msg}{where}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionSyntaxError(source, f"cannot be parsed: {exc}") from None
    return Expression(source, _inspect(tree, source), tree)


def _split(text: str) -> list[tuple[bool, str]]:
    """Cut text into (is_expression, content) parts; `}}` inside a dict literal is kept."""
    parts: list[tuple[bool, str]] = []
    pos = 0
    while (start := text.find("{{", pos)) >= 0:
        end = text.find("}}", start + 2)
        opened = text.count("{", start + 2, end) - text.count("}", start + 2, end)
        while end >= 0 and opened > 0 and end - start <= MAX_EXPRESSION_CHARS:
            nxt = text.find("}}", end + 1)  # extend past a `}}` that closes a literal
            if nxt >= 0:
                opened += text.count("{", end, nxt) - text.count("}", end, nxt)
            end = nxt
        if end < 0:
            raise ExpressionSyntaxError(text[start:], "'{{' is not closed by '}}'")
        if start > pos:
            parts.append((False, text[pos:start]))
        parts.append((True, text[start + 2 : end]))
        pos = end + 2
    if pos < len(text):
        parts.append((False, text[pos:]))
    return parts


class _Text(NamedTuple):
    """A compiled string: how to render it and what it reads (or why it is bad)."""

    render: Render | None
    exprs: tuple[Expression, ...]
    errors: tuple[ExpressionSyntaxError, ...]
    whole: bool  # exactly one expression, with nothing but whitespace around it


def _parse_text_uncached(text: str) -> _Text:
    match = _WHOLE_DOTTED_RE.fullmatch(text)
    if match is not None and "__" not in text:  # the common `{{ a.b.c }}`, without parsing
        root, *attrs = match.group(1).split(".")
        if root not in _NOT_ROOTS and _KEYWORDS.isdisjoint(attrs):
            path = (root, tuple([(a, True) for a in attrs]))
            expr = Expression(match.group(1), frozenset((root,)), None, path)
            return _Text(expr.evaluate, (expr,), (), True)
    try:
        parts = _split(text)
    except ExpressionSyntaxError as exc:
        return _Text(None, (), (exc,), False)
    pieces: list[str | Expression] = []
    errors: list[ExpressionSyntaxError] = []
    for is_expr, content in parts:
        try:
            pieces.append(_compile(content) if is_expr else content)
        except ExpressionSyntaxError as exc:
            errors.append(exc)
    exprs = tuple(p for p in pieces if isinstance(p, Expression))
    whole = [is_expr for is_expr, _ in parts].count(True) == 1 and all(
        is_expr or not content.strip() for is_expr, content in parts
    )
    if errors:
        return _Text(None, exprs, tuple(errors), whole)
    # A whole template yields the raw value; otherwise the results are joined as text.
    return _Text(
        exprs[0].evaluate if whole else _render_text(text, tuple(pieces)), exprs, (), whole
    )


_parse_text_cached = lru_cache(maxsize=16_384)(_parse_text_uncached)


def is_whole_template(value: Any) -> bool:
    """True for a string that is exactly one `{{ expr }}` (whitespace around allowed)."""
    return type(value) is str and "{{" in value and _parse_text_uncached(value).whole


def _to_text(value: Any, expr: Expression) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        if isinstance(value, Mapping | list | tuple):
            if _size(value, MAX_RENDERED_CHARS) > MAX_RENDERED_CHARS:
                raise ValueError("it is too large")
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        return str(value)
    except ValueError as exc:  # e.g. an int over Python's digit limit
        message = f"expression '{_clip(expr.source)}' cannot be rendered as text: {exc}"
        raise ExpressionError(message, {"expression": expr.source}) from exc


class Template:
    """A JSON value whose `{{ }}` strings are compiled once and rendered per scope."""

    __slots__ = ("_render", "expressions", "is_static", "names", "value")

    def __init__(
        self, value: Any, render: Render | None, expressions: tuple[tuple[Path, Expression], ...]
    ) -> None:
        self.value = value
        self._render = render
        self.expressions = expressions  # (where in value, expression), for validation
        self.is_static = render is None
        self.names: frozenset[str] = (
            expressions[0][1].names
            if len(expressions) == 1
            else frozenset().union(*(e.names for _, e in expressions))
        )

    def render(self, scope: Scope) -> Any:
        """Fill in the expressions. Static parts are shared, not copied: do not mutate."""
        return self.value if self._render is None else self._render(scope)


_SCALARS = frozenset({int, float, bool, type(None)})
Found = list[tuple[Path, Expression]]
Errors = list[ExpressionSyntaxError] | None


def _compile_value(value: Any, path: Path, found: Found, errors: Errors) -> Render | None:
    """The render function of a JSON value, or None when it is static."""
    kind = type(value)  # exact type checks first: ABC isinstance is slow at this scale
    if kind is str:
        return _compile_text(value, path, found, errors) if "{{" in value else None
    if kind in _SCALARS:
        return None
    if kind is list:
        items: Iterable[tuple[Any, Any]] = enumerate(value)
    elif kind is dict or isinstance(value, Mapping):
        items = value.items()
    else:
        return None
    dynamic = []
    for key, child in items:
        child_kind = type(child)
        if child_kind is str:
            if "{{" not in child:
                continue  # most values are static: skip the call and the path tuple
            render = _compile_text(child, (*path, key), found, errors)
        elif child_kind in _SCALARS:
            continue
        else:
            render = _compile_value(child, (*path, key), found, errors)
        if render is not None:
            dynamic.append((key, render))
    return _render_items(value, dynamic, list if kind is list else dict) if dynamic else None


def _compile_text(text: str, path: Path, found: Found, errors: Errors) -> Render | None:
    # Short strings repeat across nodes ("{{ input.api }}"); long ones would bloat the cache.
    parsed = _parse_text_cached(text) if len(text) <= 256 else _parse_text_uncached(text)
    for exc in parsed.errors:
        located = ExpressionSyntaxError(exc.expression, exc.message, path)
        if errors is None:
            raise located
        errors.append(located)
    for expr in parsed.exprs:
        found.append((path, expr))
    return parsed.render


def _render_items(value: Any, dynamic: list[tuple[Any, Render]], kind: type) -> Render:
    """Render a container: copy it shallowly and fill in its dynamic children."""

    def render(scope: Scope) -> Any:
        out = kind(value)  # shallow copy: static children are shared
        for key, child in dynamic:
            out[key] = child(scope)
        return out

    return render


def _render_text(text: str, pieces: tuple[str | Expression, ...]) -> Render:
    def render(scope: Scope) -> str:
        out: list[str] = []
        size = 0
        for piece in pieces:
            chunk = piece if isinstance(piece, str) else _to_text(piece.evaluate(scope), piece)
            size += len(chunk)
            if size > MAX_RENDERED_CHARS:
                raise ExpressionError(
                    f"template '{_clip(text)}' renders more than {MAX_RENDERED_CHARS} characters"
                )
            out.append(chunk)
        return "".join(out)

    return render


def compile_template(value: Any, *, errors: Errors = None) -> Template:
    """Compile a JSON value holding `{{ }}` strings; raises ExpressionSyntaxError.

    With `errors`, bad expressions are appended there instead and their strings stay static.
    """
    found: Found = []
    try:
        render = _compile_value(value, (), found, errors)
    except RecursionError:
        too_deep = ExpressionSyntaxError("…", "the value is nested too deeply")
        if errors is None:
            raise too_deep from None
        errors.append(too_deep)
        render = None
    return Template(value, render, tuple(found))
