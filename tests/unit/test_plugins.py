"""Node plugins: entry points for installed packages, TURNOUT_PLUGINS for one process's extras."""

from __future__ import annotations

import pytest

from app.execution.complexity import ComplexityAnalyzer, ComplexityThresholds
from app.nodes.registry import NodeRegistryError, default_registry
from app.workflows.graph import compile_workflow


def test_a_normal_install_does_not_register_the_benchmark_plugin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TURNOUT_PLUGINS", raising=False)

    assert "bench.fib" not in default_registry()


def test_turnout_plugins_registers_the_named_node_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TURNOUT_PLUGINS", " bench.nodes:FibNode , ")

    registry = default_registry()

    assert "bench.fib" in registry
    assert "bench.fib" not in default_registry(plugins=False)


@pytest.mark.parametrize("spec", ["no_such_module:X", "bench.nodes:NoSuchNode"])
def test_a_broken_plugin_spec_stops_startup_naming_it(
    monkeypatch: pytest.MonkeyPatch, spec: str
) -> None:
    monkeypatch.setenv("TURNOUT_PLUGINS", spec)

    with pytest.raises(NodeRegistryError, match=f"cannot load node plugin '{spec}'"):
        default_registry()


def test_heavy_fib_steps_are_estimated_realistically_so_auto_mode_queues_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TURNOUT_PLUGINS", "bench.nodes:FibNode")
    registry = default_registry()
    fib = registry.get("bench.fib")
    assert fib is not None

    light, heavy = fib.estimate_ms({"n": 10}), fib.estimate_ms({"n": 30})
    templated = fib.estimate_ms({"n": "{{ input.n }}"})

    assert light < 0.1
    assert heavy > 100  # ~2.7 million calls
    assert templated == heavy
    nodes = [
        {"id": f"f{i}", "type": "bench.fib", "params": {"n": 30}, "dependsOn": [f"f{i - 1}"]}
        for i in range(1, 9)
    ]
    nodes[0].pop("dependsOn")
    workflow = compile_workflow({"nodes": nodes}, registry, max_nodes=100)
    thresholds = ComplexityThresholds(max_duration_ms=1000)
    report = ComplexityAnalyzer(thresholds, registry=registry).analyze(workflow)
    assert report.estimated_duration_ms == pytest.approx(8 * heavy)  # 8 ms with the 1 ms default
    assert report.queue
