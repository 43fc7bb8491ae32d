"""The safe evaluator: simpleeval, restricted (names, attributes, sizes, time), never `eval`."""

from __future__ import annotations

import ast
import re
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import simpleeval

# Scope names that are not node ids; `item`/`index` exist only inside a foreach template.
RESERVED_NAMES = frozenset({"input", "item", "index", "execution"})
MAX_EXPRESSION_CHARS = 10_000
MAX_RENDERED_CHARS = 1_000_000  # a text template's output
MAX_RESULT_SIZE = 1_000_000  # values (string characters count) in a computed result
MAX_DEPTH = 100  # AST levels: keeps evaluation far from Python's recursion limit
MAX_INT_BITS = 13_000  # under Python's 4,300-digit limit, so results can be written as JSON
# The work bound: each syntax node evaluated costs WORK_PER_NODE, each value built or scanned
# (a string's character, a list's item) costs 1. MAX_WORK is 10,000 nodes, ~5 ms of CPU;
# since everything built is counted, it also bounds the memory one evaluation can allocate.
WORK_PER_NODE = 16
MAX_WORK = 10_000 * WORK_PER_NODE
ITEM_WORK = 2 * WORK_PER_NODE  # a comprehension's bookkeeping per item, beyond its nodes
TEXT_WORK = 8  # str() or an f-string of a structure: per value printed
MAX_EVAL_SECONDS = 0.25  # CPU time backstop, in case the work count misses a costly case
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
        super().__init__(f"bad expression '{clip(expression)}': {message}")


class Failure(simpleeval.InvalidExpression):  # type: ignore[misc]
    """An evaluation failure whose message is already clear to a user."""


class LimitExceeded(Failure):
    """The evaluation needed more work (CPU) or memory than it may use."""


LIMIT_ERRORS = (LimitExceeded, simpleeval.IterableTooLong, simpleeval.NumberTooHigh, MemoryError)


def clip(text: str, limit: int = 120) -> str:
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
    if isinstance(times, int) and times > 0 and times * value_size(seq, _STR_LIMIT) > _STR_LIMIT:
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


def _str(value: Any = "") -> str:
    if not isinstance(value, str) and value_size(value, MAX_RENDERED_CHARS) > MAX_RENDERED_CHARS:
        raise Failure("str() argument is too large")
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
PRIMITIVES = frozenset({int, float, str, bool, type(None)})
_SPEC_NUMBER = re.compile(r"\d+")


def lookup_message(container: Any, key: Any, where: str, exc: Exception) -> str:
    if isinstance(exc, KeyError) and isinstance(container, Mapping):
        return f"no key {key!r} in {where}"
    if isinstance(exc, IndexError):
        return f"index {key!r} is out of range for {where} (length {len(container)})"
    return f"cannot read {key!r} of {where}: it is {_kind(container)}"


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
        super().__init__(operators=dict(_OPERATORS), functions=dict(_FUNCTIONS), names={})
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
        self.spend(WORK_PER_NODE)
        self.ticks += 1
        if not self.ticks & 0xFF and time.thread_time() > self.deadline:
            raise LimitExceeded(f"took more than {MAX_EVAL_SECONDS:g} s of CPU")
        try:
            handler = self.nodes[type(node)]
        except KeyError:
            raise Failure(f"{type(node).__name__} is not supported") from None
        result = handler(node)
        if node in self.iterated:  # a comprehension's source: each item taken costs too
            return self._taken(result)
        kind = type(result)
        if kind not in PRIMITIVES:
            self._check_disallowed_items(result)
        if kind in _SIZED and (
            type(node) in _BUILDERS
            or (isinstance(node, ast.Subscript) and type(node.slice) is ast.Slice)
        ):
            self.spend(len(result))
        return result

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
        if func is _str and args and type(args[0]) is not str:
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
        if isinstance(base, str) and attr in _BOUNDED_STR_METHODS:
            self.spend(len(base))
            return _BOUNDED_STR_METHODS[attr](base)
        if attr not in _ALLOWED_ATTRS.get(type(base), ()):
            where = ast.unparse(node.value)
            raise Failure(f"{where} is {_kind(base)}, which has no attribute '{attr}'")
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
        if not isinstance(value, str) and value_size(value, _STR_LIMIT) > _STR_LIMIT:
            raise simpleeval.IterableTooLong("value is too large for an f-string")
        if node.format_spec is None:
            return value
        spec = str(self._eval(node.format_spec))
        if any(int(n) > 1000 for n in _SPEC_NUMBER.findall(spec)):
            raise Failure(f"format width or precision too large in '{spec}'")
        return format(value, spec)


_local = threading.local()
_EMPTY: Scope = types.MappingProxyType({})


class _Budget:
    """What is left of one evaluation's work; a template render shares one across its parts."""

    __slots__ = ("deadline", "left")

    def __init__(self) -> None:
        self.left = MAX_WORK
        self.deadline = time.thread_time() + MAX_EVAL_SECONDS


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
        evaluator.names = _EMPTY  # do not keep a finished run's outputs alive
        evaluator.iterated.clear()
        evaluator.busy = False


# The syntax an expression may use: what the evaluator knows, and nothing else.
ALLOWED_NODES = frozenset(
    {*_Evaluator().nodes, *_OPERATORS, ast.Load, ast.Store, ast.And, ast.Or, ast.Starred}
) - {ast.Expr, ast.Assign, ast.AugAssign, ast.Import}
