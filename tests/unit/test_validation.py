"""Workflow validation and compilation: every problem reported, cycles named, DAG built."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from app.errors import PayloadTooLarge, WorkflowInvalid
from app.nodes.base import BaseNode, NodeContext, Params
from app.nodes.registry import NodeRegistry
from app.workflows.graph import CompiledWorkflow, compile_workflow
from app.workflows.model import WorkflowDefinition
from app.workflows.problems import Problem, validate_input


class FetchParams(Params):
    url: str
    method: Literal["GET", "POST"] = "GET"
    retries: int = 0
    headers: dict[str, str] = Field(default_factory=dict)


class FetchNode(BaseNode):
    name: ClassVar[str] = "fetch"
    params_model: ClassVar[type[BaseModel]] = FetchParams
    external: ClassVar[bool] = True
    default_estimate_ms: ClassVar[float] = 250.0

    async def run(self, ctx: NodeContext, params: Any) -> Any:
        return {}


class NoopParams(Params):
    value: Any = None


class NoopNode(BaseNode):
    name: ClassVar[str] = "noop"
    params_model: ClassVar[type[BaseModel]] = NoopParams

    async def run(self, ctx: NodeContext, params: Any) -> Any:
        return params.value


class TransformParams(Params):
    model_config = ConfigDict(extra="allow")


class TransformNode(BaseNode):
    name: ClassVar[str] = "transform"
    params_model: ClassVar[type[BaseModel]] = TransformParams

    async def run(self, ctx: NodeContext, params: Any) -> Any:
        return params.model_dump()


class ConditionParams(Params):
    expr: str


class ConditionNode(BaseNode):
    name: ClassVar[str] = "condition"
    params_model: ClassVar[type[BaseModel]] = ConditionParams
    expression_params: ClassVar[frozenset[str]] = frozenset({"expr"})

    async def run(self, ctx: NodeContext, params: Any) -> Any:
        return {"result": True}


class DelayParams(Params):
    ms: int = Field(ge=0)


class DelayNode(BaseNode):
    name: ClassVar[str] = "delay"
    params_model: ClassVar[type[BaseModel]] = DelayParams

    def estimate_ms(self, params: Mapping[str, Any]) -> float:
        return float(params["ms"])

    async def run(self, ctx: NodeContext, params: Any) -> Any:
        return None


class ForeachParams(Params):
    items: list[Any]
    concurrency: int = Field(default=1, ge=1)
    node: dict[str, Any]


class ForeachNode(BaseNode):
    name: ClassVar[str] = "foreach"
    params_model: ClassVar[type[BaseModel]] = ForeachParams
    loop: ClassVar[bool] = True
    raw_params: ClassVar[frozenset[str]] = frozenset({"node"})

    async def run(self, ctx: NodeContext, params: Any) -> Any:
        return []


REGISTRY = NodeRegistry(
    [FetchNode(), NoopNode(), TransformNode(), ConditionNode(), DelayNode(), ForeachNode()]
)
KNOWN = "known types: condition, delay, fetch, foreach, noop, transform"


def compile_(workflow: Mapping[str, Any] | WorkflowDefinition, max_nodes: int = 100) -> Any:
    return compile_workflow(workflow, REGISTRY, max_nodes=max_nodes)


def problems_of(workflow: Any) -> list[dict[str, Any]]:
    with pytest.raises(WorkflowInvalid) as info:
        compile_(workflow)
    details: list[dict[str, Any]] = info.value.details
    return details


def node(node_id: str, type_: str = "noop", **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": type_, **fields}


def foreach(node_id: str, template: dict[str, Any], items: Any = (1,)) -> dict[str, Any]:
    return node(node_id, "foreach", params={"items": list(items), "node": template})


def order_workflow() -> dict[str, Any]:
    return {
        "name": "order-review",
        "inputSchema": {"type": "object", "required": ["orderId"]},
        "nodes": [
            node("fetch", "fetch", params={"url": "{{ input.api }}/orders/{{ input.orderId }}"}),
            node("big", "condition", params={"expr": "fetch.body.total > 100"}),
            node("approve", when="big.result", params={"value": "ok"}),
            node(
                "lines",
                "foreach",
                params={
                    "items": "{{ fetch.body.lines }}",
                    "concurrency": 5,
                    "node": {
                        "type": "transform",
                        "params": {
                            "sku": "{{ item.sku }}",
                            "n": "{{ index }}",
                            "by": "{{ who.x }}",
                        },
                    },
                },
            ),
            node("cool", "delay", params={"ms": 60000}, dependsOn=["lines"]),
            node("who", params={"value": "{{ input.user }}"}),
        ],
        "output": {"total": "{{ fetch.body.total }}", "approved": "{{ approve }}"},
    }


def test_valid_workflow_compiles_into_a_topological_dag() -> None:
    compiled: CompiledWorkflow = compile_(order_workflow())
    assert list(compiled.nodes) == ["fetch", "big", "approve", "who", "lines", "cool"]
    deps = {node_id: set(n.deps) for node_id, n in compiled.nodes.items()}
    assert deps == {
        "fetch": set(),
        "big": {"fetch"},
        "approve": {"big"},
        "who": set(),
        "lines": {"fetch", "who"},  # `who` is read inside the foreach node template
        "cool": {"lines"},
    }
    assert compiled.dependents == {
        "fetch": ("big", "lines"),
        "big": ("approve",),
        "approve": (),
        "who": ("lines",),
        "lines": ("cool",),
        "cool": (),
    }
    lines = compiled.nodes["lines"]
    assert lines.raw_params == {"node": order_workflow()["nodes"][3]["params"]["node"]}
    assert lines.params.render({"fetch": {"body": {"lines": [1, 2]}}}) == {
        "items": [1, 2],
        "concurrency": 5,
    }
    big = compiled.nodes["big"]
    assert big.expressions["expr"].evaluate({"fetch": {"body": {"total": 101}}}) is True
    approve = compiled.nodes["approve"]
    assert approve.when is not None and approve.when.names == {"big"}
    assert compiled.nodes["fetch"].estimate_ms == 250.0
    assert compiled.nodes["cool"].estimate_ms == 60000.0
    assert compiled.output.names == {"fetch", "approve"}
    assert compiled.definition.input_schema == {"type": "object", "required": ["orderId"]}


def test_a_parsed_definition_compiles_too() -> None:
    definition = WorkflowDefinition.model_validate(order_workflow())
    assert compile_(definition).definition is definition


@pytest.mark.parametrize(
    ("workflow", "code", "field", "message"),
    [
        (
            {"nodes": [node("a"), node("a")]},
            "duplicate_id",
            "nodes[1].id",
            "node id 'a' is already used by nodes[0]",
        ),
        ({"nodes": [{"type": "noop"}]}, "invalid", "nodes[0].id", "Field required"),
        ({"nodes": [node("1abc")]}, "invalid", "nodes[0].id", "a node id starts with a letter"),
        ({"nodes": [node("a"), 5]}, "invalid", "nodes[1]", "valid dictionary"),
        ({"nodes": [node("input")]}, "reserved_id", "nodes[0].id", "'input' is a reserved name"),
        ({"nodes": [node("item")]}, "reserved_id", "nodes[0].id", "'item' is a reserved name"),
        ({"nodes": [node("a", "nope")]}, "unknown_type", "nodes[0].type", KNOWN),
        (
            {"nodes": [node("a", "fetch", params={"url": "u", "retries": "many"})]},
            "bad_params",
            "nodes[0].params.retries",
            "valid integer",
        ),
        (
            {"nodes": [node("a", "fetch", params={"url": "u", "method": "DELETE"})]},
            "bad_params",
            "nodes[0].params.method",
            "'GET' or 'POST'",
        ),
        ({"nodes": [node("a", "fetch")]}, "bad_params", "nodes[0].params.url", "Field required"),
        (
            {"nodes": [node("a", params={"nope": 1})]},
            "bad_params",
            "nodes[0].params.nope",
            "Extra inputs are not permitted",
        ),
        (
            {"nodes": [node("a", "fetch", params={"url": "u", "headers": {"X-A": 1}})]},
            "bad_params",
            "nodes[0].params.headers['X-A']",
            "valid string",
        ),
        (
            {"nodes": [node("a", "transform", params={"x": "{{ 1 + }}"})]},
            "bad_expression",
            "nodes[0].params.x",
            "bad expression '1 +': invalid syntax",
        ),
        (
            {"nodes": [node("a", "transform", params={"x": ["{{ eval('1') }}"]})]},
            "bad_expression",
            "nodes[0].params.x[0]",
            "unknown function 'eval'",
        ),
        (
            {"nodes": [node("a", "transform", params={"x": "{{ input.x"})]},
            "bad_expression",
            "nodes[0].params.x",
            "'{{' is not closed by '}}'",
        ),
        ({"nodes": [node("a", when="a ==")]}, "bad_expression", "nodes[0].when", "a =="),
        (
            {"nodes": [node("a", "condition", params={"expr": "input.x >"})]},
            "bad_expression",
            "nodes[0].params.expr",
            "bad expression 'input.x >'",
        ),
        (
            {"nodes": [node("a", "transform", params={"x": "{{ ghost.x }}"})]},
            "unknown_reference",
            "nodes[0].params.x",
            "unknown node 'ghost' in 'ghost.x'",
        ),
        (
            {"nodes": [node("fetch"), node("b", params={"value": "{{ fetc.body }}"})]},
            "unknown_reference",
            "nodes[1].params.value",
            "did you mean 'fetch'?",
        ),
        (
            {"nodes": [node("a", when="ghost.ok")]},
            "unknown_reference",
            "nodes[0].when",
            "unknown node 'ghost'",
        ),
        (
            {"nodes": [node("a", "condition", params={"expr": "ghost"})]},
            "unknown_reference",
            "nodes[0].params.expr",
            "unknown node 'ghost'",
        ),
        (
            {"nodes": [node("a", dependsOn=["ghost"])]},
            "unknown_reference",
            "nodes[0].dependsOn[0]",
            "'ghost': no such node",
        ),
        (
            {"nodes": [node("a", dependsOn=["a"])]},
            "unknown_reference",
            "nodes[0].dependsOn[0]",
            "a node cannot depend on itself",
        ),
        (
            {"nodes": [node("a", params={"value": "{{ a.x }}"})]},
            "unknown_reference",
            "nodes[0].params.value",
            "node 'a' cannot read its own output",
        ),
        (
            {"nodes": [node("a", params={"value": "{{ item.sku }}"})]},
            "unknown_reference",
            "nodes[0].params.value",
            "'item' is only defined inside a foreach node template",
        ),
        (
            {"nodes": [node("a", when="index > 2")]},
            "unknown_reference",
            "nodes[0].when",
            "'index' is only defined inside a foreach node template",
        ),
        (
            {"nodes": [foreach("a", {"type": "nope"})]},
            "unknown_type",
            "nodes[0].params.node.type",
            KNOWN,
        ),
        (
            {"nodes": [foreach("a", {"params": {}})]},
            "unknown_type",
            "nodes[0].params.node.type",
            "a node template needs a 'type'",
        ),
        (
            {"nodes": [foreach("a", {"type": "fetch", "params": {"url": "u", "retries": "x"}})]},
            "bad_params",
            "nodes[0].params.node.params.retries",
            "valid integer",
        ),
        (
            {"nodes": [foreach("a", {"type": "noop", "when": "item"})]},
            "bad_params",
            "nodes[0].params.node.when",
            "unknown field 'when' in a node template",
        ),
        (
            {"nodes": [foreach("a", {"type": "noop", "params": []})]},
            "bad_params",
            "nodes[0].params.node.params",
            "params must be an object",
        ),
        (
            {"nodes": [foreach("a", {"type": "noop", "timeout": 0})]},
            "bad_params",
            "nodes[0].params.node.timeout",
            "timeout must be whole milliseconds",
        ),
        (
            {
                "nodes": [
                    node(
                        "a",
                        "foreach",
                        params={
                            "items": [1],
                            "node": {"type": "noop", "retry": {"maxAttempts": 0}},
                        },
                    )
                ]
            },
            "invalid",
            "nodes[0].params.node.retry.maxAttempts",
            "greater than or equal to 1",
        ),
        (
            {"nodes": [foreach("a", {"type": "noop", "params": {"value": "{{ ghost.x }}"}})]},
            "unknown_reference",
            "nodes[0].params.node.params.value",
            "unknown node 'ghost'",
        ),
        (
            {"nodes": [node("a", "foreach", params={"items": [1]})]},
            "bad_params",
            "nodes[0].params.node",
            "Field required",
        ),
        (
            {"nodes": [node("a")], "output": {"t": "{{ ghost.x }}"}},
            "unknown_reference",
            "output.t",
            "unknown node 'ghost'",
        ),
        (
            {"nodes": [node("a")], "output": ["{{ item }}"]},
            "unknown_reference",
            "output[0]",
            "'item' is only defined inside a foreach node template",
        ),
        (
            {"nodes": [node("a")], "output": "{{ a.x.__class__ }}"},
            "bad_expression",
            "output",
            "access to '__class__' is not allowed",
        ),
        (
            {"nodes": [node("a")], "inputSchema": {"type": "nope"}},
            "invalid_schema",
            "inputSchema.type",
            "inputSchema is not a valid JSON Schema",
        ),
        ({"nodes": [node("a")], "onFailure": "explode"}, "invalid", "onFailure", "'stop'"),
        (
            {"nodes": [node("a")], "maxConcurrency": 0},
            "invalid",
            "maxConcurrency",
            "greater than or equal to 1",
        ),
        ({"nodes": []}, "invalid", "nodes", "at least 1 item"),
        ({"name": "x"}, "invalid", "nodes", "Field required"),
        ({"nodes": "a"}, "invalid", "nodes", "valid list"),
        ([node("a")], "invalid", "", "a workflow must be a JSON object"),
        (
            {"nodes": [node("a", dependsOn=["b"]), node("b", dependsOn=["a"])]},
            "cycle",
            "nodes[0]",
            "cycle: a -> b -> a",
        ),
    ],
)
def test_each_kind_of_problem_is_reported_where_it_is(
    workflow: Any, code: str, field: str, message: str
) -> None:
    problems = problems_of(workflow)
    assert len(problems) == 1, problems
    assert (problems[0]["code"], problems[0]["field"]) == (code, field)
    assert message in problems[0]["message"]


def test_every_problem_is_reported_at_once() -> None:
    workflow = {
        "nodes": [
            node("a", "fetch", params={"url": "{{ c.x }}", "retries": "often"}),
            node("a"),
            node("b", "nope", params={"x": "{{ ghost }}"}),
            node("c", when="a.ok and", dependsOn=["d"]),
            node("d", params={"value": "{{ c }}"}),
            {"id": "e"},
        ],
        "inputSchema": {"type": 5},
        "output": "{{ item }}",
        "onFailure": "sometimes",
    }
    with pytest.raises(WorkflowInvalid) as info:
        compile_(workflow)
    found = {(p["code"], p["field"], p["nodeId"]) for p in info.value.details}
    assert found == {
        ("invalid", "nodes[5].type", "e"),
        ("invalid", "onFailure", None),
        ("duplicate_id", "nodes[1].id", "a"),
        ("bad_params", "nodes[0].params.retries", "a"),
        ("unknown_type", "nodes[2].type", "b"),
        ("unknown_reference", "nodes[2].params.x", "b"),
        ("bad_expression", "nodes[3].when", "c"),
        ("unknown_reference", "output", None),
        ("invalid_schema", "inputSchema.type", None),
        ("cycle", "nodes[3]", "c"),
    }
    assert len(info.value.details) == len(found)
    assert info.value.message.startswith("invalid workflow: ")
    assert info.value.message.endswith(f"(and {len(found) - 1} more)")


@pytest.mark.parametrize(
    ("nodes", "message", "cycle"),
    [
        (
            [
                node("a", params={"value": "{{ c.x }}"}),
                node("b", params={"value": "{{ a.x }}"}),
                node("c", params={"value": "{{ b.x }}"}),
            ],
            "cycle: a -> b -> c -> a",
            ["a", "b", "c"],
        ),
        (
            [
                node("start"),
                node("x", dependsOn=["start", "z"]),
                node("y", when="x.ok"),
                node("z", "transform", params={"v": ["{{ y }}"]}),
                node("tail", dependsOn=["z"]),
            ],
            "cycle: x -> y -> z -> x",
            ["x", "y", "z"],
        ),
        (
            [
                node("p", dependsOn=["q"]),
                node("q", dependsOn=["p"]),
                node("r", dependsOn=["s"]),
                node("s", dependsOn=["r"]),
            ],
            "cycle: p -> q -> p",
            ["p", "q"],
        ),
        (
            [
                node("loop", "foreach", params={"items": "{{ back }}", "node": {"type": "noop"}}),
                node(
                    "back",
                    "foreach",
                    params={
                        "items": [1],
                        "node": {"type": "noop", "params": {"value": "{{ loop }}"}},
                    },
                ),
            ],
            "cycle: loop -> back -> loop",
            ["loop", "back"],
        ),
    ],
)
def test_a_cycle_is_named_once(nodes: list[dict[str, Any]], message: str, cycle: list[str]) -> None:
    problems = problems_of({"nodes": nodes})
    assert [(p["code"], p["message"], p["cycle"]) for p in problems] == [("cycle", message, cycle)]


def test_a_ten_thousand_node_ring_is_found_without_recursion() -> None:
    nodes = [node("n0", params={"value": "{{ n9999.x }}"})]
    nodes += [node(f"n{i}", params={"value": f"{{{{ n{i - 1}.x }}}}"}) for i in range(1, 10_000)]
    with pytest.raises(WorkflowInvalid) as info:
        compile_({"nodes": nodes}, max_nodes=10_000)
    (problem,) = info.value.details
    assert problem["message"].startswith("cycle: n0 -> n1 -> n2 -> ")
    assert problem["message"].endswith(" -> n9999 -> n0")
    assert len(problem["cycle"]) == 10_000


@pytest.mark.parametrize(
    "params",
    [
        {"url": "{{ input.url }}", "retries": "{{ input.retries }}"},
        {"url": "u", "method": "{{ input.method }}", "headers": "{{ input.headers }}"},
        {"url": "u", "headers": {"X-Id": "{{ input.id }}"}, "retries": " {{ input.n }} "},
        {"url": "{{ input.host }}/x", "retries": "1{{ input.zeros }}"},  # text, still run-time
    ],
)
def test_params_holding_templates_are_typed_at_run_time(params: dict[str, Any]) -> None:
    workflow = {
        "nodes": [
            node("a", "fetch", params=params),
            node(
                "b", "foreach", params={"items": [1], "node": {"type": "fetch", "params": params}}
            ),
        ]
    }
    compiled = compile_(workflow)
    assert compiled.nodes["a"].params.value == params


def test_too_many_nodes_is_payload_too_large() -> None:
    workflow = {"nodes": [node("a"), node("b"), node("c", "nope")]}
    for raw in (workflow, WorkflowDefinition.model_validate(workflow)):
        with pytest.raises(PayloadTooLarge) as info:
            compile_(raw, max_nodes=2)
        assert info.value.details[0]["code"] == "too_many_nodes"
        assert info.value.message == "the workflow has 3 nodes; the limit is 2"


def test_problem_as_dict_names_the_field() -> None:
    problem = Problem(("nodes", 2, "params", "headers", "Content-Type"), "bad_params", "m", "x")
    assert problem.to_dict() == {
        "loc": ["nodes", 2, "params", "headers", "Content-Type"],
        "field": "nodes[2].params.headers['Content-Type']",
        "code": "bad_params",
        "message": "m",
        "nodeId": "x",
    }


SCHEMA = {
    "type": "object",
    "required": ["orderId"],
    "properties": {
        "orderId": {"type": "integer"},
        "email": {"type": "string", "format": "email"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}


@pytest.mark.parametrize(
    ("schema", "data", "expected"),
    [
        (None, {"anything": 1}, []),
        (SCHEMA, {"orderId": 1, "email": "a@b.co", "tags": ["x"]}, []),
        (SCHEMA, {}, [("input", "'orderId' is a required property")]),
        (SCHEMA, {"orderId": "7"}, [("input.orderId", "'7' is not of type 'integer'")]),
        (SCHEMA, {"orderId": 1, "email": "nope"}, [("input.email", "is not a 'email'")]),
        (SCHEMA, {"orderId": 1, "tags": ["a", 2]}, [("input.tags[1]", "2 is not of type")]),
        (
            SCHEMA,
            {"email": "nope", "tags": [1]},
            [
                ("input.email", "is not a 'email'"),
                ("input.tags[0]", "1 is not of type 'string'"),
                ("input", "'orderId' is a required property"),
            ],
        ),
        (SCHEMA, [], [("input", "[] is not of type 'object'")]),
    ],
)
def test_input_is_checked_against_the_schema_with_every_error(
    schema: dict[str, Any] | None, data: Any, expected: list[tuple[str, str]]
) -> None:
    problems = validate_input(schema, data)
    assert sorted((p.to_dict()["field"], p.code) for p in problems) == sorted(
        (field, "invalid_input") for field, _ in expected
    )
    for field, message in expected:
        assert any(p.to_dict()["field"] == field and message in p.message for p in problems)


def test_an_unusable_input_schema_is_a_problem_not_a_crash() -> None:
    (problem,) = validate_input({"$ref": "https://example.invalid/schema.json"}, {})
    assert (problem.code, problem.loc) == ("invalid_schema", ("inputSchema",))


def big_workflow(shape: str) -> dict[str, Any]:
    def ref(i: int) -> str:
        return f"{{{{ n{i - 1}.x }}}}" if shape == "chain" else "{{ n0.x }}"

    nodes = [node("n0", params={"value": 1})]
    nodes += [
        node(f"n{i}", "transform" if i % 2 else "noop", params={"value": ref(i)})
        for i in range(1, 10_000)
    ]
    return {"nodes": nodes}


@pytest.mark.parametrize("shape", ["chain", "wide"])
def test_ten_thousand_nodes_compile_without_quadratic_work(shape: str) -> None:
    workflow = big_workflow(shape)
    started = time.perf_counter()
    compiled = compile_(workflow, max_nodes=10_000)
    elapsed = time.perf_counter() - started
    assert len(compiled.nodes) == 10_000
    if shape == "chain":
        assert list(compiled.nodes)[:3] == ["n0", "n1", "n2"]
        assert compiled.dependents["n41"] == ("n42",)
    else:
        assert len(compiled.dependents["n0"]) == 9_999
    # About 0.3 s on a slow 2 GHz VM; anything quadratic would take minutes.
    assert elapsed < 3.0


def test_the_design_example_compiles_with_the_built_in_types() -> None:
    builtin = pytest.importorskip("app.nodes.builtin")
    registry = NodeRegistry(builtin.builtin_types())
    workflow = {
        "name": "order-review",
        "version": "3",
        "inputSchema": {"type": "object", "required": ["orderId"]},
        "nodes": [
            {
                "id": "fetch",
                "type": "http.request",
                "params": {"method": "GET", "url": "{{ input.api }}/orders/{{ input.orderId }}"},
                "retry": {"maxAttempts": 3, "backoff": "exponential", "initialDelay": 500},
                "timeout": 10000,
            },
            {"id": "big", "type": "condition", "params": {"expr": "fetch.body.total > 100"}},
            {
                "id": "approve",
                "type": "human.input",
                "when": "big.result",
                "params": {"prompt": "Approve?", "schema": {"type": "object"}},
            },
            {
                "id": "lines",
                "type": "foreach",
                "params": {
                    "items": "{{ fetch.body.lines }}",
                    "concurrency": 5,
                    "node": {
                        "type": "transform",
                        "params": {"sku": "{{ item.sku }}", "n": "{{ index }}"},
                    },
                },
            },
            {"id": "cool", "type": "delay", "params": {"ms": 60000}, "dependsOn": ["lines"]},
        ],
        "output": {"total": "{{ fetch.body.total }}", "approved": "{{ approve.approved }}"},
        "onFailure": "stop",
        "maxConcurrency": 8,
    }
    compiled = compile_workflow(workflow, registry, max_nodes=100)
    assert list(compiled.nodes) == ["fetch", "big", "approve", "lines", "cool"]
    assert compiled.nodes["lines"].deps == {"fetch"}
