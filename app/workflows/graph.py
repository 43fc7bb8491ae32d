"""Validate a workflow definition and compile it into a DAG ready to run."""

from __future__ import annotations

import difflib
import gc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from app.errors import PayloadTooLarge, WorkflowInvalid
from app.expressions.evaluator import RESERVED_NAMES, ExpressionSyntaxError, Path
from app.expressions.expression import Expression, compile_expression
from app.expressions.templates import Template, compile_template
from app.jsonschemas import schema_problems
from app.nodes.base import NodeType
from app.nodes.registry import NodeRegistry
from app.nodes.template import MAX_DURATION_MS, NODE_TEMPLATE_KEYS, RetryPolicy
from app.workflows.dag import find_cycle, topological_order
from app.workflows.model import NodeDefinition, WorkflowDefinition
from app.workflows.problems import Loc, Problem

ITEM_NAMES = frozenset({"item", "index"})  # defined only inside a foreach node template
GLOBAL_NAMES = (RESERVED_NAMES - ITEM_NAMES) | {"secrets"}  # secrets: resolved at run time
_NODE_LIST = TypeAdapter(list[NodeDefinition])
_ID_RULE = "a node id starts with a letter or '_' and has only letters, digits and '_' (<= 128)"


@dataclass(frozen=True)
class CompiledNode:
    """One node, checked, with its params and expressions compiled."""

    definition: NodeDefinition
    node_type: NodeType
    params: Template  # the params minus node_type.raw_params
    raw_params: dict[str, Any]  # passed to the node untouched (foreach's node template)
    expressions: dict[str, Expression]  # node_type.expression_params (condition.expr)
    when: Expression | None
    deps: frozenset[str]  # node ids it reads or is ordered after

    @property
    def id(self) -> str:
        return self.definition.id

    @property
    def estimate_ms(self) -> float:
        return self.node_type.estimate_ms(self.definition.params)


@dataclass(frozen=True)
class CompiledWorkflow:
    """A valid workflow: nodes in a topological order and the edges both ways."""

    definition: WorkflowDefinition
    nodes: dict[str, CompiledNode]  # insertion order is a topological order
    dependents: dict[str, tuple[str, ...]]
    output: Template


@dataclass(slots=True)
class _Ref:
    """Who is referring, what it may read, and where its dependencies go."""

    node_id: str | None
    deps: set[str]
    allow_item: bool


def _deferred(params: Any, where: Loc) -> bool:
    """True when a params error sits at or inside a `{{ }}` string: typed only at run time."""
    value = params
    for key in where:
        if isinstance(value, str):
            break
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return False
    return isinstance(value, str) and "{{" in value


def _check_count(count: int, max_nodes: int) -> None:
    if count > max_nodes:
        message = f"the workflow has {count} nodes; the limit is {max_nodes}"
        problem = Problem(("nodes",), "too_many_nodes", message)
        raise PayloadTooLarge(message, [problem.to_dict()])


class _Checker:
    """Compiles the parts of one workflow, collecting every problem on the way."""

    def __init__(self, registry: NodeRegistry) -> None:
        self.registry = registry
        self.problems: list[Problem] = []
        self.ids: dict[str, int] = {}  # node id -> index of the node that owns it

    def add(self, loc: Loc, code: str, message: str, node_id: str | None = None) -> None:
        self.problems.append(Problem(loc, code, message, node_id))

    def add_validation(
        self,
        exc: ValidationError,
        loc: Loc,
        node_id: str | None = None,
        skip: Callable[[Loc], bool] | None = None,
    ) -> None:
        for err in exc.errors(include_url=False):
            where = tuple(err["loc"])
            if skip is None or not skip(where):
                message = _ID_RULE if where[-1:] == ("id",) and "pattern" in err["type"] else None
                self.add((*loc, *where), "invalid", message or err["msg"], node_id)

    def parse(
        self, raw: Mapping[str, Any] | WorkflowDefinition, max_nodes: int
    ) -> tuple[WorkflowDefinition | None, list[tuple[int, NodeDefinition]], Any, Any]:
        if isinstance(raw, WorkflowDefinition):
            _check_count(len(raw.nodes), max_nodes)
            return raw, list(enumerate(raw.nodes)), raw.output, raw.input_schema
        if not isinstance(raw, Mapping):
            self.add((), "invalid", "a workflow must be a JSON object")
            return None, [], None, None
        listed = raw.get("nodes")
        nodes: list[tuple[int, NodeDefinition]] = []
        header = raw
        if isinstance(listed, list):
            _check_count(len(listed), max_nodes)
            nodes = self.parse_nodes(listed)
            header = {**raw, "nodes": [node for _, node in nodes]}  # parsed models pass as is
        try:
            definition = WorkflowDefinition.model_validate(header)
        except ValidationError as exc:
            definition = None
            # Each listed node's own errors were reported by parse_nodes.
            parsed_apart = isinstance(listed, list) and bool(listed)
            self.add_validation(exc, (), skip=lambda w: parsed_apart and w[:1] == ("nodes",))
        schema = definition.input_schema if definition else raw.get("inputSchema")
        return definition, nodes, raw.get("output"), schema

    def parse_nodes(self, listed: list[Any]) -> list[tuple[int, NodeDefinition]]:
        try:
            return list(enumerate(_NODE_LIST.validate_python(listed)))
        except ValidationError:
            pass  # parse them one at a time to keep the good ones
        nodes = []
        for i, item in enumerate(listed):
            try:
                nodes.append((i, NodeDefinition.model_validate(item)))
            except ValidationError as exc:
                node_id = item.get("id") if isinstance(item, Mapping) else None
                self.add_validation(
                    exc, ("nodes", i), node_id if isinstance(node_id, str) else None
                )
        return nodes

    def claim_ids(self, nodes: list[tuple[int, NodeDefinition]]) -> None:
        for i, node in nodes:
            first = self.ids.get(node.id)
            if first is not None:
                message = f"node id '{node.id}' is already used by nodes[{first}]"
                self.add(("nodes", i, "id"), "duplicate_id", message, node.id)
            elif node.id in RESERVED_NAMES:
                message = f"'{node.id}' is a reserved name in expressions; choose another id"
                self.add(("nodes", i, "id"), "reserved_id", message, node.id)
            else:
                self.ids[node.id] = i

    def node(self, i: int, node: NodeDefinition) -> tuple[CompiledNode | None, frozenset[str]]:
        """Compile one node; its dependencies are final since every id is known."""
        loc: Loc = ("nodes", i)
        ref = _Ref(node.id, set(), allow_item=False)
        node_type = self.registry.get(node.type)
        if node_type is None:
            self.add((*loc, "type"), "unknown_type", self.unknown_type(node.type), node.id)
            self.template(node.params, (*loc, "params"), ref)
        else:
            params, raw, expressions = self.params(node_type, node.params, (*loc, "params"), ref)
        when = None
        if node.when is not None:
            when = self.expression(node.when, (*loc, "when"), ref)
        for j, dep in enumerate(node.depends_on) if node.depends_on else ():
            if dep != node.id and dep in self.ids:
                ref.deps.add(dep)
            else:
                reason = "a node cannot depend on itself" if dep == node.id else "no such node"
                self.add((*loc, "dependsOn", j), "unknown_reference", f"'{dep}': {reason}", node.id)
        deps = frozenset(ref.deps)
        if node_type is None:
            return None, deps
        return CompiledNode(node, node_type, params, raw, expressions, when, deps), deps

    def unknown_type(self, name: Any) -> str:
        known = ", ".join(self.registry.names())
        if not isinstance(name, str):
            return f"a node template needs a 'type'; known types: {known}"
        return f"unknown node type '{name}'; known types: {known}"

    def params(
        self, node_type: NodeType, params: Mapping[str, Any], loc: Loc, ref: _Ref
    ) -> tuple[Template, dict[str, Any], dict[str, Expression]]:
        raw_names = node_type.raw_params
        try:
            node_type.params_model.model_validate(params)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                where = tuple(err["loc"])
                # Raw params are checked below; `{{ }}` values get their type at run time.
                if not (len(where) > 1 and where[0] in raw_names) and not _deferred(params, where):
                    self.add((*loc, *where), "bad_params", err["msg"], ref.node_id)
        raw = {k: v for k, v in params.items() if k in raw_names} if raw_names else {}
        rest = {k: v for k, v in params.items() if k not in raw} if raw else params
        template = self.template(rest, loc, ref)
        if raw:
            self.raw_params(node_type, raw, loc, ref)
        expressions: dict[str, Expression] = {}
        for name in node_type.expression_params:
            text = params.get(name)
            if isinstance(text, str) and (expr := self.expression(text, (*loc, name), ref)):
                expressions[name] = expr
        return template, raw, expressions

    def raw_params(self, node_type: NodeType, raw: dict[str, Any], loc: Loc, ref: _Ref) -> None:
        """Raw params are rendered by the node itself; a loop's see `item` and `index`."""
        inner = _Ref(ref.node_id, ref.deps, allow_item=ref.allow_item or node_type.loop)
        for name, value in raw.items():
            if isinstance(value, Mapping) and (node_type.loop or "type" in value):
                self.node_template(value, (*loc, name), inner)
            else:
                self.template(value, (*loc, name), inner)

    def node_template(self, value: Mapping[str, Any], loc: Loc, ref: _Ref) -> None:
        """Check a nested node template {type, params, retry?, timeout?} (foreach's `node`)."""
        for key in value:
            if key not in NODE_TEMPLATE_KEYS:
                allowed = ", ".join(NODE_TEMPLATE_KEYS)
                message = f"unknown field '{key}' in a node template (allowed: {allowed})"
                self.add((*loc, key), "bad_params", message, ref.node_id)
        params = value.get("params")
        if params is None:
            params = {}
        elif not isinstance(params, Mapping):
            self.add((*loc, "params"), "bad_params", "params must be an object", ref.node_id)
            params = {}
        type_name = value.get("type")
        node_type = self.registry.get(type_name) if isinstance(type_name, str) else None
        if node_type is None:
            message = self.unknown_type(type_name)
            self.add((*loc, "type"), "unknown_type", message, ref.node_id)
            self.template(params, (*loc, "params"), ref)
        else:
            self.params(node_type, params, (*loc, "params"), ref)
        if value.get("retry") is not None:
            try:
                RetryPolicy.model_validate(value["retry"])
            except ValidationError as exc:
                self.add_validation(exc, (*loc, "retry"), ref.node_id)
        timeout = value.get("timeout")
        bounded = type(timeout) is int and 1 <= timeout <= MAX_DURATION_MS
        if timeout is not None and not bounded:
            message = f"timeout must be whole milliseconds from 1 to {MAX_DURATION_MS}"
            self.add((*loc, "timeout"), "bad_params", message, ref.node_id)

    def template(self, value: Any, loc: Loc, ref: _Ref) -> Template:
        errors: list[ExpressionSyntaxError] = []
        template = compile_template(value, errors=errors)
        for err in errors:
            self.add((*loc, *err.path), "bad_expression", str(err), ref.node_id)
        for path, expr in template.expressions:
            self.refer(expr, loc, path, ref)
        return template

    def expression(self, text: str, loc: Loc, ref: _Ref) -> Expression | None:
        try:
            expr = compile_expression(text)
        except ExpressionSyntaxError as exc:
            self.add(loc, "bad_expression", str(exc), ref.node_id)
            return None
        self.refer(expr, loc, (), ref)
        return expr

    def refer(self, expr: Expression, loc: Loc, path: Path, ref: _Ref) -> None:
        for name in expr.names:
            if name in self.ids and name != ref.node_id:
                ref.deps.add(name)
            elif name in GLOBAL_NAMES or (ref.allow_item and name in ITEM_NAMES):
                continue
            elif name in ITEM_NAMES:
                message = f"'{name}' is only defined inside a foreach node template"
                self.add((*loc, *path), "unknown_reference", message, ref.node_id)
            elif name == ref.node_id:
                message = f"node '{name}' cannot read its own output (in '{expr.source}')"
                self.add((*loc, *path), "unknown_reference", message, ref.node_id)
            else:
                message = f"unknown node '{name}' in '{expr.source}'{self.suggest(name)}"
                self.add((*loc, *path), "unknown_reference", message, ref.node_id)

    def suggest(self, name: str) -> str:
        if len(self.ids) > 1000:  # difflib is quadratic-ish; not worth it for huge graphs
            return ""
        close = difflib.get_close_matches(name, self.ids, n=1)
        return f"; did you mean '{close[0]}'?" if close else ""

    def order(self, graph: dict[str, frozenset[str]]) -> list[str] | None:
        """The run order, earliest-defined first; reports one cycle if there is any."""
        order, stuck = topological_order(graph, self.ids)
        if order is None:
            cycle = find_cycle(graph, stuck, self.ids)
            message = "cycle: " + " -> ".join([*cycle, cycle[0]])
            loc: Loc = ("nodes", self.ids[cycle[0]])
            self.problems.append(Problem(loc, "cycle", message, cycle[0], tuple(cycle)))
        return order

    def input_schema(self, schema: Any) -> None:
        if isinstance(schema, Mapping):
            for path, message in schema_problems(schema):
                self.add(("inputSchema", *path), "invalid_schema", f"inputSchema {message}")


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    # Compiling allocates ~30 long-lived objects per node; with 10,000 nodes CPython 3.11
    # would run several full collections over them, about 40% of the time. Reference
    # counting still frees garbage meanwhile; a concurrent caller can only re-enable early.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def compile_workflow(
    raw: Mapping[str, Any] | WorkflowDefinition, registry: NodeRegistry, *, max_nodes: int
) -> CompiledWorkflow:
    """Check everything and compile; raises WorkflowInvalid listing every problem."""
    with _cyclic_gc_paused():
        return _compile(raw, registry, max_nodes)


def _compile(
    raw: Mapping[str, Any] | WorkflowDefinition, registry: NodeRegistry, max_nodes: int
) -> CompiledWorkflow:
    checker = _Checker(registry)
    definition, nodes, output, schema = checker.parse(raw, max_nodes)
    checker.claim_ids(nodes)
    compiled: dict[str, CompiledNode] = {}
    graph: dict[str, frozenset[str]] = {}
    for i, node in nodes:
        compiled_node, deps = checker.node(i, node)
        if checker.ids.get(node.id) == i:  # duplicates and reserved ids stay out of the graph
            graph[node.id] = deps
            if compiled_node is not None:  # else its unknown type is a reported problem
                compiled[node.id] = compiled_node
    output_template = checker.template(output, ("output",), _Ref(None, set(), allow_item=False))
    checker.input_schema(schema)
    order = checker.order(graph)
    problems = checker.problems
    if problems or definition is None or order is None:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        message = f"invalid workflow: {problems[0].message}{more}" if problems else None
        raise WorkflowInvalid(message, [p.to_dict() for p in problems])
    dependents: dict[str, list[str]] = {}
    for node_id in order:
        dependents[node_id] = []
        for dep in graph[node_id]:
            dependents[dep].append(node_id)  # deps come earlier in `order`
    return CompiledWorkflow(
        definition=definition,
        nodes={node_id: compiled[node_id] for node_id in order},
        dependents={node_id: tuple(children) for node_id, children in dependents.items()},
        output=output_template,
    )
