"""`{{ }}` templates: JSON values whose strings hold expressions, compiled once."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from app.errors import ExpressionError, ExpressionLimit
from app.expressions.evaluator import (
    MAX_EXPRESSION_CHARS,
    MAX_RENDERED_CHARS,
    ExpressionSyntaxError,
    Path,
    Render,
    Scope,
    clip,
    value_size,
    with_budget,
)
from app.expressions.expression import (
    KEYWORDS,
    NOT_ROOTS,
    WHOLE_DOTTED_RE,
    Expression,
    compile_cached,
)


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
    match = WHOLE_DOTTED_RE.fullmatch(text)
    if match is not None and "__" not in text:  # the common `{{ a.b.c }}`, without parsing
        root, *attrs = match.group(1).split(".")
        if root not in NOT_ROOTS and KEYWORDS.isdisjoint(attrs):
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
            pieces.append(compile_cached(content) if is_expr else content)
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
            if value_size(value, MAX_RENDERED_CHARS) > MAX_RENDERED_CHARS:
                raise ValueError("it is too large")
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        return str(value)
    except ValueError as exc:  # e.g. an int over Python's digit limit
        message = f"expression '{clip(expr.source)}' cannot be rendered as text: {exc}"
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
        return self.value if self._render is None else with_budget(self._render, scope)


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
                raise ExpressionLimit(
                    f"template '{clip(text)}' renders more than {MAX_RENDERED_CHARS} characters"
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
