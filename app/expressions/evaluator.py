"""The safe evaluator: simpleeval, restricted (names, attributes, sizes, work), never `eval`."""

from __future__ import annotations

import ast
import threading
import time
import types
from collections.abc import Iterator, Mapping
from typing import Any

import simpleeval

from app.expressions.bounded import (
    ALLOWED_ATTRS,
    BOUNDED_STR_METHODS,
    FUNCTION_NAMES,
    FUNCTIONS,
    LIMIT_ERRORS,
    MAX_DEPTH,
    MAX_EXPRESSION_CHARS,
    MAX_INT_BITS,
    MAX_RENDERED_CHARS,
    MAX_RESULT_SIZE,
    OPERATORS,
    PRIMITIVES,
    RESERVED_NAMES,
    SPEC_NUMBER,
    STR_LIMIT,
    ExpressionSyntaxError,
    Failure,
    LimitExceeded,
    Path,
    Render,
    Scope,
    bounded_str,
    clip,
    kind_name,
    lookup_message,
    value_size,
)

__all__ = [
    "ALLOWED_NODES",
    "FUNCTION_NAMES",
    "LIMIT_ERRORS",
    "MAX_DEPTH",
    "MAX_EXPRESSION_CHARS",
    "MAX_INT_BITS",
    "MAX_RENDERED_CHARS",
    "MAX_RESULT_SIZE",
    "PRIMITIVES",
    "RESERVED_NAMES",
    "ExpressionSyntaxError",
    "Failure",
    "Path",
    "Render",
    "Scope",
    "clip",
    "evaluate_tree",
    "lookup_message",
    "value_size",
    "with_budget",
]

# The work bound: each syntax node evaluated costs WORK_PER_NODE, each value built or scanned
# (a string's character, a list's item) costs 1. MAX_WORK is 10,000 nodes, ~5 ms of CPU;
# since everything built is counted, it also bounds the memory one evaluation can allocate.
WORK_PER_NODE = 16
MAX_WORK = 10_000 * WORK_PER_NODE
ITEM_WORK = 2 * WORK_PER_NODE  # a comprehension's bookkeeping per item, beyond its nodes
TEXT_WORK = 8  # str() or an f-string of a structure: per value printed
MAX_EVAL_SECONDS = 0.25  # CPU time backstop, in case the work count misses a costly case


# Nodes whose result is a new value (its size is work done and memory held); a name,
# attribute or index read returns a value that exists already and costs nothing more.
_BUILDERS = frozenset(
    {ast.BinOp, ast.Call, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.JoinedStr}
    | {ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.FormattedValue}
)
_SIZED = frozenset({str, list, tuple, dict, set, frozenset, bytes})


def _size(value: Any) -> int:
    return len(value) if type(value) in _SIZED else 0


class _Evaluator(simpleeval.EvalWithCompoundTypes):  # type: ignore[misc]
    """simpleeval with JSON semantics: `a.b` reads key `b` of a mapping, never a method."""

    def __init__(self) -> None:
        super().__init__(operators=dict(OPERATORS), functions=dict(FUNCTIONS), names={})
        self.deadline = 0.0
        self.ticks = 0
        self.left = MAX_WORK
        self.iterated: set[ast.AST] = set()
        self.busy = False

    def spend(self, work: int) -> None:
        self.left -= work
        if self.left < 0:
            raise LimitExceeded(
                f"needs more than {MAX_WORK // WORK_PER_NODE} operations"
                " (each value built or scanned counts too)"
            )

    def _eval(self, node: ast.AST) -> Any:
        self.left -= WORK_PER_NODE  # inline: this runs for every node
        if self.left < 0:
            self.spend(0)
        self.ticks += 1
        if not self.ticks & 0xFF:
            self._check_cpu()
        try:
            handler = self.nodes[type(node)]
        except KeyError:
            raise Failure(f"{type(node).__name__} is not supported") from None
        result = handler(node)
        kind = type(result)
        if kind not in PRIMITIVES:
            self._check_disallowed_items(result)
        if kind in _SIZED and (
            type(node) in _BUILDERS
            or (isinstance(node, ast.Subscript) and type(node.slice) is ast.Slice)
        ):
            self.spend(len(result))
        if node in self.iterated:  # a comprehension's source: each item taken costs too
            if kind in _SIZED:  # a comprehension always takes every item: charge them first
                self.spend(ITEM_WORK * len(result))
            else:
                return self._taken(result)
        return result

    def _check_cpu(self) -> None:
        now = time.thread_time()  # a system call: read every 256 nodes, not at the start
        if not self.deadline:
            self.deadline = now + MAX_EVAL_SECONDS
        elif now > self.deadline:
            raise LimitExceeded(f"took more than {MAX_EVAL_SECONDS:g} s of CPU")

    def _eval_comprehension(self, node: ast.ListComp | ast.GeneratorExp | ast.DictComp) -> Any:
        self.iterated.update(g.iter for g in node.generators)
        return super()._eval_comprehension(node)

    def _taken(self, values: Any) -> Iterator[Any]:
        for value in values:
            self.spend(ITEM_WORK)
            yield value

    def _eval_call(self, node: ast.Call) -> Any:
        if isinstance(node.func, ast.Attribute):
            func = self._eval(node.func)
        else:
            try:
                func = self.functions[node.func.id]  # type: ignore[attr-defined]
            except (KeyError, AttributeError):
                raise Failure("only the listed functions can be called") from None
        args = [self._eval(a) for a in node.args]
        kwargs = dict(self._eval(k) for k in node.keywords)
        if func is bounded_str and args and type(args[0]) is not str:
            self.spend_text(args[0])  # str() of a structure walks and prints all of it
        elif func is not len:  # every other function reads its arguments through
            work = sum(_size(a) for a in args)
            self.spend(work * work.bit_length() if func is sorted else work)
        return func(*args, **kwargs)

    def spend_text(self, value: Any) -> None:
        """Charge for printing `value` as text: ~TEXT_WORK per value it holds."""
        if type(value) in PRIMITIVES:
            return
        self.spend(_size(value) * TEXT_WORK)  # cheap first: the top level alone may be too much
        limit = max(self.left // TEXT_WORK, 0)
        self.spend(value_size(value, limit) * TEXT_WORK)  # the walk stops past the limit

    def _eval_binop(self, node: ast.BinOp) -> Any:
        left, right = self._eval(node.left), self._eval(node.right)
        self.spend(_size(left) + _size(right))  # `a - b` of sets scans both
        try:
            operator = self.operators[type(node.op)]
        except KeyError:
            raise Failure(f"{type(node.op).__name__} is not supported") from None
        return operator(left, right)

    def _eval_compare(self, node: ast.Compare) -> Any:
        right = self._eval(node.left)
        result = True
        for operation, comparator in zip(node.ops, node.comparators, strict=True):
            left, right = right, self._eval(comparator)
            self.spend(_size(left) + _size(right))  # `x in big`, `a == b` scan them
            result = self.operators[type(operation)](left, right)
            if not result:
                break
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
        raise Failure(f"name '{node.id}' is not defined")

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        attr = node.attr
        if attr.startswith("__"):
            raise Failure(f"access to '{attr}' is not allowed")
        base = self._eval(node.value)
        if isinstance(base, Mapping):
            try:
                return base[attr]
            except KeyError:
                raise Failure(f"no key '{attr}' in {ast.unparse(node.value)}") from None
        if isinstance(base, str) and attr in BOUNDED_STR_METHODS:
            self.spend(len(base))
            return BOUNDED_STR_METHODS[attr](base)
        if attr not in ALLOWED_ATTRS.get(type(base), ()):
            where = ast.unparse(node.value)
            raise Failure(f"{where} is {kind_name(base)}, which has no attribute '{attr}'")
        value = getattr(base, attr)
        if callable(value):  # a method reads its receiver: `big.split()`, `big.count(x)`
            self.spend(_size(base))
        return value

    def _eval_subscript(self, node: ast.Subscript) -> Any:
        container = self._eval(node.value)
        key = self._eval(node.slice)
        try:
            return container[key]
        except (KeyError, IndexError, TypeError) as exc:
            where = ast.unparse(node.value)
            raise Failure(lookup_message(container, key, where, exc)) from None

    def _eval_formattedvalue(self, node: ast.FormattedValue) -> Any:
        value = self._eval(node.value)
        self.spend_text(value)
        if not isinstance(value, str) and value_size(value, STR_LIMIT) > STR_LIMIT:
            raise simpleeval.IterableTooLong("value is too large for an f-string")
        if node.format_spec is None:
            return value
        spec = str(self._eval(node.format_spec))
        if any(int(n) > 1000 for n in SPEC_NUMBER.findall(spec)):
            raise Failure(f"format width or precision too large in '{spec}'")
        return format(value, spec)


_local = threading.local()
_EMPTY: Scope = types.MappingProxyType({})


class _Budget:
    """What is left of one evaluation's work; a template render shares one across its parts."""

    __slots__ = ("deadline", "left")

    def __init__(self) -> None:
        self.left = MAX_WORK
        self.deadline = 0.0  # set at the first CPU check, after 256 nodes


def with_budget(render: Render, scope: Scope) -> Any:
    """Run `render` with one work budget for every expression it evaluates (a step's params)."""
    if getattr(_local, "budget", None) is not None:
        return render(scope)
    _local.budget = _Budget()
    try:
        return render(scope)
    finally:
        _local.budget = None


def evaluate_tree(tree: ast.expr, source: str, scope: Scope) -> Any:
    # simpleeval keeps names on the instance: one evaluator per thread, names set per call
    # (building an evaluator costs ~17 µs, more than most evaluations).
    evaluator: _Evaluator | None = getattr(_local, "evaluator", None)
    if evaluator is None:
        evaluator = _local.evaluator = _Evaluator()
    if evaluator.busy:  # re-entered from inside an evaluation: never share the state
        evaluator = _Evaluator()
    budget: _Budget | None = getattr(_local, "budget", None)
    if budget is None:
        budget = _Budget()
    evaluator.busy = True
    evaluator.names = scope
    evaluator.ticks = 0
    evaluator.left = budget.left
    evaluator.deadline = budget.deadline
    try:
        return evaluator.eval(source, previously_parsed=tree)
    finally:
        budget.left = evaluator.left
        budget.deadline = evaluator.deadline
        evaluator.names = _EMPTY  # do not keep a finished run's outputs alive
        evaluator.iterated.clear()
        evaluator.busy = False


# The syntax an expression may use: what the evaluator knows, and nothing else.
ALLOWED_NODES = frozenset(
    {*_Evaluator().nodes, *OPERATORS, ast.Load, ast.Store, ast.And, ast.Or, ast.Starred}
) - {ast.Expr, ast.Assign, ast.AugAssign, ast.Import}
