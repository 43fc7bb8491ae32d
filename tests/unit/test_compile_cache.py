"""The compiled-workflow cache: one compile per distinct definition, failures every time."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from app.errors import PayloadTooLarge, WorkflowInvalid
from app.nodes.registry import NodeRegistry, default_registry
from app.workflows import cache
from app.workflows.cache import compile_cached
from app.workflows.graph import CompiledWorkflow, compile_workflow

REGISTRY = default_registry(plugins=False)


def three_steps() -> dict[str, Any]:
    return {
        "name": "cached",
        "nodes": [
            {"id": "a", "type": "transform", "params": {"x": "{{ input.x }}", "k": 1}},
            {"id": "b", "type": "transform", "params": {"x": "{{ a.x + 1 }}"}},
            {"id": "c", "type": "transform", "params": {"x": "{{ b.x + 1 }}"}},
        ],
        "output": {"x": "{{ c.x }}"},
    }


@pytest.fixture(autouse=True)
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many times the real compiler ran (each test starts with an empty cache)."""
    calls: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> CompiledWorkflow:
        calls.append(1)
        return compile_workflow(*args, **kwargs)

    cache.clear()
    monkeypatch.setattr(cache, "compile_workflow", counting)
    yield calls
    cache.clear()


def test_an_equal_definition_is_compiled_once(counted: list[int]) -> None:
    first = compile_cached(three_steps(), REGISTRY, max_nodes=100)
    # Another object with the same value (as each run reads its row): the same workflow.
    again = compile_cached(json.loads(json.dumps(three_steps())), REGISTRY, max_nodes=100)
    assert again is first and len(counted) == 1
    assert list(again.nodes) == ["a", "b", "c"]


def test_a_different_definition_limit_or_registry_is_compiled_apart(counted: list[int]) -> None:
    first = compile_cached(three_steps(), REGISTRY, max_nodes=100)
    changed = three_steps()
    changed["nodes"][1]["params"]["x"] = "{{ a.x + 2 }}"
    assert compile_cached(changed, REGISTRY, max_nodes=100) is not first
    assert compile_cached(three_steps(), REGISTRY, max_nodes=50) is not first
    other = default_registry(plugins=False)
    elsewhere = compile_cached(three_steps(), other, max_nodes=100)
    assert elsewhere is not first
    assert elsewhere.nodes["a"].node_type is other.get("transform")
    assert len(counted) == 4
    assert compile_cached(three_steps(), REGISTRY, max_nodes=100) is first


def test_key_order_is_part_of_the_definition(counted: list[int]) -> None:
    """The params' order is the order of the step's output: never served from another's."""
    reordered = three_steps()
    reordered["nodes"][0]["params"] = {"k": 1, "x": "{{ input.x }}"}
    first = compile_cached(three_steps(), REGISTRY, max_nodes=100)
    second = compile_cached(reordered, REGISTRY, max_nodes=100)
    assert second is not first and len(counted) == 2
    scope = {"input": {"x": 0}}
    assert list(first.nodes["a"].params.render(scope)) == ["x", "k"]
    assert list(second.nodes["a"].params.render(scope)) == ["k", "x"]


def test_an_invalid_definition_fails_the_same_way_every_time(counted: list[int]) -> None:
    broken = three_steps()
    broken["nodes"][1]["params"]["x"] = "{{ nope.x }}"
    errors = []
    for _ in range(3):
        with pytest.raises(WorkflowInvalid) as info:
            compile_cached(copy.deepcopy(broken), REGISTRY, max_nodes=100)
        errors.append((info.value.message, info.value.details))
    assert len(counted) == 3 and errors[0] == errors[1] == errors[2]
    assert errors[0][1][0]["code"] == "unknown_reference"


def test_a_success_under_one_limit_is_still_too_large_under_a_lower_one() -> None:
    compile_cached(three_steps(), REGISTRY, max_nodes=100)
    for _ in range(2):
        with pytest.raises(PayloadTooLarge):
            compile_cached(three_steps(), REGISTRY, max_nodes=2)


def test_a_definition_that_is_not_plain_json_is_compiled_every_time(counted: list[int]) -> None:
    odd = three_steps()
    odd["nodes"][0]["params"]["k"] = float("nan")
    first = compile_cached(odd, REGISTRY, max_nodes=100)
    assert compile_cached(odd, REGISTRY, max_nodes=100) is not first
    assert len(counted) == 2


def test_the_cache_is_bounded_least_recently_used_first(
    monkeypatch: pytest.MonkeyPatch, counted: list[int]
) -> None:
    monkeypatch.setattr(cache, "MAX_ENTRIES", 2)
    named = {name: {**three_steps(), "name": name} for name in ("a", "b", "c")}
    a = compile_cached(named["a"], REGISTRY, max_nodes=100)
    compile_cached(named["b"], REGISTRY, max_nodes=100)
    assert compile_cached(named["a"], REGISTRY, max_nodes=100) is a  # a is the newest now
    compile_cached(named["c"], REGISTRY, max_nodes=100)  # drops b
    assert compile_cached(named["a"], REGISTRY, max_nodes=100) is a
    assert len(counted) == 3
    compile_cached(named["b"], REGISTRY, max_nodes=100)
    assert len(counted) == 4


def test_the_cache_is_bounded_by_the_size_of_the_definitions(
    monkeypatch: pytest.MonkeyPatch, counted: list[int]
) -> None:
    size = len(json.dumps(three_steps(), separators=(",", ":")))
    monkeypatch.setattr(cache, "MAX_CHARS", size + 10)  # room for one
    big = {**three_steps(), "description": "x" * (size + 11)}
    for _ in range(2):
        compile_cached(big, REGISTRY, max_nodes=100)  # larger than the whole cache: not kept
    assert len(counted) == 2
    first = compile_cached(three_steps(), REGISTRY, max_nodes=100)
    compile_cached({**three_steps(), "name": "other"}, REGISTRY, max_nodes=100)  # drops first
    assert compile_cached(three_steps(), REGISTRY, max_nodes=100) is not first
    assert len(counted) == 5


def test_a_registry_that_is_gone_takes_its_entries_with_it() -> None:
    registry = NodeRegistry(list(REGISTRY))
    compile_cached(three_steps(), registry, max_nodes=100)
    assert registry in cache._caches
    del registry
    assert len(cache._caches) == 0
