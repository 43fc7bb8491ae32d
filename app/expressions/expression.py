"""Compiled expressions: a fast path for plain references, simpleeval for the rest."""

from __future__ import annotations

import ast
import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from app.errors import ExpressionError, ExpressionLimit
from app.expressions.evaluator import (
    ALLOWED_NODES,
    FUNCTION_NAMES,
    LIMIT_ERRORS,
    MAX_DEPTH,
    MAX_EXPRESSION_CHARS,
    MAX_INT_BITS,
    MAX_RESULT_SIZE,
    PRIMITIVES,
    ExpressionSyntaxError,
    Failure,
    Scope,
    clip,
    evaluate_tree,
    lookup_message,
    value_size,
)

_SLOW = object()  # the fast path gives up: evaluate with simpleeval instead


class _TooLarge(Failure):
    """A result over the size bounds."""


PathSteps = tuple[tuple[str | int, bool], ...]  # (key, written as `.attr`)


def _follow(root: str, steps: PathSteps, scope: Scope) -> Any:
    """Evaluate `a.b[0]["c"]` without simpleeval: most references are plain paths."""
    try:
        value = scope[root]
    except KeyError:
        raise Failure(f"name '{root}' is not defined") from None
    for n, (key, is_attr) in enumerate(steps):
        if is_attr and not isinstance(value, Mapping):
            return _SLOW
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError) as exc:
            where = root + "".join(f".{k}" if a else f"[{k!r}]" for k, a in steps[:n])
            raise Failure(lookup_message(value, key, where, exc)) from None
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
            tree = self._tree if self._tree is not None else parse_expression(self.source)
            value = evaluate_tree(tree, self.source, scope)
            if type(value) is int and value.bit_length() > MAX_INT_BITS:
                raise _TooLarge(f"result is over {MAX_INT_BITS} bits")
            if type(value) not in PRIMITIVES:
                if callable(value):
                    raise Failure("a function or method is not a value; call it")
                if value_size(value, MAX_RESULT_SIZE) > MAX_RESULT_SIZE:
                    raise _TooLarge(f"result holds more than {MAX_RESULT_SIZE} values")
            return value
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, RecursionError):
                reason = "nested too deeply"
            # Too much work, memory or depth: `expression_limit`; a mistake: `expression_error`.
            limit = isinstance(exc, (*LIMIT_ERRORS, RecursionError, _TooLarge))
            raise (ExpressionLimit if limit else ExpressionError)(
                f"expression '{clip(self.source)}' failed: {reason}", {"expression": self.source}
            ) from exc


_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_KEY = r"""-?(?:0|[1-9][0-9]*)|"[^"\\\n]*"|'[^'\\\n]*'"""
_PATH = rf"{_IDENT}(?:\.{_IDENT}|\[(?:{_KEY})\])*"
_PATH_RE = re.compile(_PATH)
_DOTTED_RE = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")
KEYWORDS = frozenset(keyword.kwlist)
NOT_ROOTS = KEYWORDS | FUNCTION_NAMES
_STEP_RE = re.compile(rf"\.({_IDENT})|\[({_KEY})\]")
WHOLE_DOTTED_RE = re.compile(rf"\s*\{{\{{\s*({_IDENT}(?:\.{_IDENT})*)\s*\}}\}}\s*")


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
    if root in NOT_ROOTS or not KEYWORDS.isdisjoint(attrs):
        return None
    return root, steps


@lru_cache(maxsize=4096)
def parse_expression(source: str) -> ast.expr:
    return ast.parse(source, mode="eval").body


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
        if type(node) not in ALLOWED_NODES:
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
    return compile_cached(text)


@lru_cache(maxsize=8192)
def compile_cached(text: str) -> Expression:
    source = text.strip()
    if not source:
        raise ExpressionSyntaxError(text, "the expression is empty")
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionSyntaxError(source, f"longer than {MAX_EXPRESSION_CHARS} characters")
    path = _match_path(source)
    if path is not None:
        return Expression(source, frozenset({path[0]}), None, path)
    try:
        tree = parse_expression(source)
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise ExpressionSyntaxError(source, f"{exc.msg}{where}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionSyntaxError(source, f"cannot be parsed: {exc}") from None
    return Expression(source, _inspect(tree, source), tree)
