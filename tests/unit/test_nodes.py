"""Built-in node types run directly: params models, outputs, failures, suspensions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from app.errors import ExpressionError, ParamsInvalid, StepError
from app.nodes.base import ItemRunner, NodeContext, Services, Suspend
from app.nodes.basic import FailNode, FailParams, NoopNode, NoopParams
from app.nodes.builtin import builtin_types
from app.nodes.condition import ConditionNode, ConditionParams
from app.nodes.delay import DelayNode, DelayParams
from app.nodes.foreach import ForeachNode, ForeachParams
from app.nodes.http import HttpParams
from app.nodes.human import HumanInputNode, HumanInputParams
from app.nodes.registry import NodeRegistry, default_registry
from app.nodes.transform import TransformNode, TransformParams
from tests.conftest import IsolatedSettings


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


def make_ctx(
    client: httpx.AsyncClient,
    *,
    queued: bool = False,
    state: dict[str, Any] | None = None,
    scope: Mapping[str, Any] | None = None,
    run_items: ItemRunner | None = None,
    **settings: Any,
) -> NodeContext:
    options: dict[str, Any] = {"http_allow_private": False, **settings}
    return NodeContext(
        execution_id="exec-1",
        node_id="step",
        step_key="step",
        attempt=1,
        services=Services(IsolatedSettings(**options), client, queued=queued),
        scope=scope if scope is not None else {"input": {"x": 1}},
        state=state if state is not None else {},
        run_items=run_items,
    )


# --- params models -------------------------------------------------------------------------

PARAMS_TABLE: list[tuple[type[BaseModel], Any, bool]] = [
    (TransformParams, {"a": 1, "json": 2, "schema": 3, "model_config": 4}, True),
    (TransformParams, [1, 2], False),
    (ConditionParams, {"expr": "a > 1"}, True),
    (ConditionParams, {"expr": ""}, False),
    (ConditionParams, {}, False),
    (NoopParams, {}, True),
    (NoopParams, {"value": [1]}, True),
    (NoopParams, {"other": 1}, False),
    (FailParams, {}, True),
    (FailParams, {"message": "boom", "code": "bad_thing", "retryable": False}, True),
    (FailParams, {"code": "has space"}, False),
    (DelayParams, {"ms": 0}, True),
    (DelayParams, {"ms": 30 * 86_400_000}, True),
    (DelayParams, {"ms": 30 * 86_400_000 + 1}, False),
    (DelayParams, {"ms": -1}, False),
    (DelayParams, {"ms": "soon"}, False),
    (ForeachParams, {"items": [1, 2], "node": {"type": "noop"}}, True),
    (
        ForeachParams,
        {
            "items": [],
            "concurrency": 1000,
            "node": {"type": "noop", "params": {}, "retry": {"maxAttempts": 2}, "timeout": 5},
        },
        True,
    ),
    (ForeachParams, {"items": "abc", "node": {"type": "noop"}}, False),
    (ForeachParams, {"items": {"a": 1}, "node": {"type": "noop"}}, False),
    (ForeachParams, {"items": [], "concurrency": 0, "node": {"type": "noop"}}, False),
    (ForeachParams, {"items": [], "concurrency": 1001, "node": {"type": "noop"}}, False),
    (ForeachParams, {"items": [], "node": {"type": "noop", "id": "x"}}, False),
    (ForeachParams, {"items": []}, False),
    (HumanInputParams, {"prompt": "ok?"}, True),
    (HumanInputParams, {"prompt": "ok?", "schema": {"type": "object"}, "timeout": 1000}, True),
    (HumanInputParams, {"prompt": "ok?", "schema": {"type": "nope"}}, False),
    (HumanInputParams, {"prompt": "ok?", "schema": {"type": "integer"}, "default": 3}, True),
    (HumanInputParams, {"prompt": "ok?", "schema": {"type": "integer"}, "default": "x"}, False),
    (HumanInputParams, {"prompt": "ok?", "timeout": 0}, False),
    (HumanInputParams, {}, False),
    (HttpParams, {"url": "http://example.com"}, True),
    (HttpParams, {"method": "post", "url": "https://example.com/a", "json": None}, True),
    (
        HttpParams,
        {
            "method": "GET",
            "url": "https://example.com",
            "headers": {"X-A": "1"},
            "query": {"a": "x", "b": 1, "c": 1.5, "d": True, "e": [1, "2"]},
            "acceptStatus": [404],
            "timeout": 1000,
            "followRedirects": True,
        },
        True,
    ),
    (HttpParams, {"url": "ftp://example.com"}, False),
    (HttpParams, {"url": "file:///etc/passwd"}, False),
    (HttpParams, {"url": "http://"}, False),
    (HttpParams, {"url": "not a url"}, False),
    (HttpParams, {"method": "TRACE", "url": "http://example.com"}, False),
    (HttpParams, {"url": "http://example.com", "json": {}, "body": "x"}, False),
    (HttpParams, {"url": "http://example.com", "headers": {"X": "a\r\nEvil: 1"}}, False),
    (HttpParams, {"url": "http://example.com", "headers": {"bad name": "1"}}, False),
    (HttpParams, {"url": "http://example.com", "acceptStatus": [600]}, False),
    (HttpParams, {"url": "http://example.com", "query": {"a": {"nested": 1}}}, False),
    (HttpParams, {"url": "http://example.com", "timeout": 0}, False),
    (HttpParams, {"url": "http://example.com", "verify": False}, False),
]


@pytest.mark.parametrize(("model", "data", "valid"), PARAMS_TABLE)
def test_params_models_accept_and_reject(model: type[BaseModel], data: Any, valid: bool) -> None:
    if valid:
        model.model_validate(data)
    else:
        with pytest.raises(ValidationError):
            model.model_validate(data)


def test_builtin_types_are_registered_with_their_facts() -> None:
    registry = default_registry(plugins=False)
    names = ["transform", "condition", "noop", "fail", "delay", "foreach", "human.input"]
    assert registry.names() == sorted([*names, "http.request", "workflow", "wait.event"])
    assert NodeRegistry(builtin_types()).names() == registry.names()
    http, foreach, human = (registry.get(n) for n in ("http.request", "foreach", "human.input"))
    assert http is not None and http.external and http.estimate_ms({}) == 500.0
    assert foreach is not None and foreach.loop and foreach.raw_params == {"node"}
    assert human is not None and human.human
    condition = registry.get("condition")
    assert condition is not None and condition.expression_params == {"expr"}


# --- transform, condition, noop, fail ------------------------------------------------------


async def test_transform_outputs_its_params(client: httpx.AsyncClient) -> None:
    params = TransformParams.model_validate({"sku": "a", "n": 2, "json": [1]})
    assert await TransformNode().run(make_ctx(client), params) == {"sku": "a", "n": 2, "json": [1]}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("fetch.body.total > 100", True),
        ("fetch.body.total < 100", False),
        ("input.x", True),
        ("fetch.body.lines", False),  # an empty list is falsy
    ],
)
async def test_condition_evaluates_expr_against_scope(
    client: httpx.AsyncClient, expr: str, expected: bool
) -> None:
    scope = {"input": {"x": 1}, "fetch": {"body": {"total": 150, "lines": []}}}
    params = ConditionParams(expr=expr)
    assert await ConditionNode().run(make_ctx(client, scope=scope), params) == {"result": expected}


async def test_condition_with_bad_syntax_fails_cleanly(client: httpx.AsyncClient) -> None:
    with pytest.raises(ExpressionError) as info:
        await ConditionNode().run(make_ctx(client), ConditionParams(expr="1 +"))
    assert info.value.retryable is False


async def test_noop_outputs_value_or_input(client: httpx.AsyncClient) -> None:
    node, ctx = NoopNode(), make_ctx(client, scope={"input": {"x": 1}})
    assert await node.run(ctx, NoopParams.model_validate({"value": 7})) == 7
    assert await node.run(ctx, NoopParams.model_validate({"value": None})) is None
    assert await node.run(ctx, NoopParams.model_validate({})) == {"x": 1}


@pytest.mark.parametrize(
    ("params", "message", "code", "retryable"),
    [
        ({}, "failed", "fail", True),
        ({"message": "boom", "code": "bad_input", "retryable": False}, "boom", "bad_input", False),
    ],
)
async def test_fail_raises_with_its_code_and_retry_decision(
    client: httpx.AsyncClient, params: dict[str, Any], message: str, code: str, retryable: bool
) -> None:
    with pytest.raises(StepError) as info:
        await FailNode().run(make_ctx(client), FailParams.model_validate(params))
    assert (info.value.message, info.value.code, info.value.retryable) == (message, code, retryable)


# --- delay ---------------------------------------------------------------------------------


def iso_in(ms: float) -> str:
    return (datetime.now(UTC) + timedelta(milliseconds=ms)).isoformat()


async def test_delay_waits_and_records_its_due_time(client: httpx.AsyncClient) -> None:
    ctx = make_ctx(client)
    started = time.monotonic()
    assert await DelayNode().run(ctx, DelayParams(ms=100)) == {"delayedMs": 100}
    assert time.monotonic() - started >= 0.09
    assert datetime.fromisoformat(ctx.state["dueAt"]) <= datetime.now(UTC)


async def test_resumed_delay_waits_only_the_remaining_time(client: httpx.AsyncClient) -> None:
    ctx = make_ctx(client, state={"dueAt": iso_in(150)})
    started = time.monotonic()
    assert await DelayNode().run(ctx, DelayParams(ms=60_000)) == {"delayedMs": 60_000}
    assert 0.1 <= time.monotonic() - started < 1.0


async def test_delay_past_due_returns_at_once(client: httpx.AsyncClient) -> None:
    ctx = make_ctx(client, queued=True, state={"dueAt": iso_in(-5_000)})
    started = time.monotonic()
    assert await DelayNode().run(ctx, DelayParams(ms=3_600_000)) == {"delayedMs": 3_600_000}
    assert time.monotonic() - started < 0.05


async def test_long_queued_delay_suspends_until_due(client: httpx.AsyncClient) -> None:
    ctx = make_ctx(client, queued=True, durable_delay_threshold_ms=5_000)
    before = datetime.now(UTC)
    with pytest.raises(Suspend) as info:
        await DelayNode().run(ctx, DelayParams(ms=60_000))
    assert info.value.reason == "delay"
    assert info.value.until == datetime.fromisoformat(ctx.state["dueAt"])
    assert info.value.until is not None
    assert timedelta(seconds=59) < info.value.until - before < timedelta(seconds=61)
    # Woken early (or re-run), it parks again until the same due time.
    with pytest.raises(Suspend) as again:
        await DelayNode().run(ctx, DelayParams(ms=60_000))
    assert again.value.until == info.value.until


async def test_short_queued_delay_sleeps_in_place(client: httpx.AsyncClient) -> None:
    ctx = make_ctx(client, queued=True, durable_delay_threshold_ms=5_000)
    assert await DelayNode().run(ctx, DelayParams(ms=50)) == {"delayedMs": 50}


async def test_immediate_delay_never_suspends(client: httpx.AsyncClient) -> None:
    ctx = make_ctx(client, queued=False, durable_delay_threshold_ms=10)
    assert await DelayNode().run(ctx, DelayParams(ms=100)) == {"delayedMs": 100}


@pytest.mark.parametrize(
    ("params", "estimate"), [({"ms": 60000}, 60000.0), ({"ms": "{{ input.ms }}"}, 0.0)]
)
def test_delay_estimate_is_its_duration(params: dict[str, Any], estimate: float) -> None:
    assert DelayNode().estimate_ms(params) == estimate


# --- human.input ---------------------------------------------------------------------------


def human(**params: Any) -> HumanInputParams:
    return HumanInputParams.model_validate({"prompt": "Approve?", **params})


async def test_human_input_returns_delivered_input(client: httpx.AsyncClient) -> None:
    ctx = make_ctx(client, queued=True, state={"input": {"approved": True}})
    assert await HumanInputNode().run(ctx, human()) == {"approved": True}


async def test_human_input_parks_in_immediate_mode_too(client: httpx.AsyncClient) -> None:
    # An immediate run parks in `waiting` and answers; the input resumes it on the queue.
    with pytest.raises(Suspend):
        await HumanInputNode().run(make_ctx(client, queued=False), human())


async def test_human_input_suspends_with_prompt_and_schema(client: httpx.AsyncClient) -> None:
    schema = {"type": "object", "required": ["approved"]}
    with pytest.raises(Suspend) as info:
        await HumanInputNode().run(make_ctx(client, queued=True), human(schema=schema))
    assert info.value.reason == "human_input"
    assert info.value.until is None
    assert info.value.data == {"prompt": "Approve?", "schema": schema, "nodeId": "step"}


async def test_human_input_timeout_sets_a_fixed_deadline(client: httpx.AsyncClient) -> None:
    ctx = make_ctx(client, queued=True)
    with pytest.raises(Suspend) as first:
        await HumanInputNode().run(ctx, human(timeout=60_000))
    assert first.value.until is not None
    assert first.value.until - datetime.now(UTC) > timedelta(seconds=59)
    await asyncio.sleep(0.01)
    with pytest.raises(Suspend) as second:
        await HumanInputNode().run(ctx, human(timeout=60_000))
    assert second.value.until == first.value.until


PAST_DEADLINE = {"expiresAt": "2000-01-01T00:00:00+00:00"}


async def test_human_input_timeout_gives_default(client: httpx.AsyncClient) -> None:
    state = PAST_DEADLINE
    ctx = make_ctx(client, queued=True, state=dict(state))
    assert await HumanInputNode().run(ctx, human(timeout=1000, default={"approved": False})) == {
        "approved": False
    }
    ctx = make_ctx(client, queued=True, state=dict(state))
    assert await HumanInputNode().run(ctx, human(timeout=1000, default=None)) is None


async def test_human_input_timeout_without_default_fails(client: httpx.AsyncClient) -> None:
    ctx = make_ctx(client, queued=True, state=dict(PAST_DEADLINE))
    with pytest.raises(StepError) as info:
        await HumanInputNode().run(ctx, human(timeout=1000))
    assert info.value.code == "human_timeout"
    assert info.value.retryable is False


# --- foreach -------------------------------------------------------------------------------


async def test_foreach_hands_items_and_template_to_the_runner(client: httpx.AsyncClient) -> None:
    calls: list[tuple[list[Any], int, Mapping[str, Any]]] = []

    async def run_items(items: list[Any], concurrency: int, node: Mapping[str, Any]) -> list[Any]:
        calls.append((items, concurrency, node))
        return [i * 2 for i in items]

    params = ForeachParams.model_validate(
        {
            "items": [1, 2, 3],
            "concurrency": 2,
            "node": {
                "type": "transform",
                "params": {"n": "{{ item }}"},
                "retry": {"maxAttempts": 3},
            },
        }
    )
    output = await ForeachNode().run(make_ctx(client, run_items=run_items), params)
    assert output == [2, 4, 6]
    items, concurrency, node = calls[0]
    assert (items, concurrency) == ([1, 2, 3], 2)
    assert node["type"] == "transform" and node["params"] == {"n": "{{ item }}"}
    assert node["retry"]["maxAttempts"] == 3 and "timeout" not in node


async def test_foreach_without_item_runner_fails_clearly(client: httpx.AsyncClient) -> None:
    params = ForeachParams.model_validate({"items": [1], "node": {"type": "noop"}})
    with pytest.raises(StepError) as info:
        await ForeachNode().run(make_ctx(client), params)
    assert info.value.code == "foreach_unsupported" and not info.value.retryable


async def test_foreach_refuses_more_items_than_the_limit(client: httpx.AsyncClient) -> None:
    async def run_items(items: list[Any], concurrency: int, node: Mapping[str, Any]) -> list[Any]:
        raise AssertionError("must not run")

    params = ForeachParams.model_validate({"items": [1, 2, 3], "node": {"type": "noop"}})
    ctx = make_ctx(client, run_items=run_items, max_foreach_items=2)
    with pytest.raises(ParamsInvalid, match="limit is 2"):
        await ForeachNode().run(ctx, params)


def test_composing_types_wait_durably_and_a_child_is_an_external_call() -> None:
    registry = default_registry(plugins=False)
    child, waiter = registry.get("workflow"), registry.get("wait.event")
    assert child is not None and child.external and getattr(child, "waits", False)
    assert waiter is not None and not waiter.external and getattr(waiter, "waits", False)
    assert waiter.raw_params == {"match"}
