"""W6: validate and plan a 10,000-node DAG in this process (no server): time and peak memory."""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from app.execution.complexity import ComplexityAnalyzer
from app.nodes.registry import default_registry
from app.workflows.graph import compile_workflow
from bench import workflows
from bench.config import Progress, Sizes
from bench.stats import Metric, Target


def plan(definition: dict[str, Any], nodes: int) -> None:
    """What `POST /workflow/run` does before anything runs: validate, compile, analyze."""
    registry = default_registry()
    compiled = compile_workflow(definition, registry, max_nodes=nodes)
    ComplexityAnalyzer(registry=registry).analyze(compiled)


def w6_scale(sizes: Sizes, progress: Progress) -> list[Metric]:
    shapes: dict[str, Callable[[int], dict[str, Any]]] = {
        "chain": workflows.chain,
        "wide": workflows.wide,
    }
    metrics: list[Metric] = []
    n = sizes.w6_nodes
    for shape, build in shapes.items():
        definition = build(n)
        timing = Metric(
            "W6", f"validate + plan {n:,} nodes, {shape}", "ms",
            targets=(Target("max", 200.0, "<= 200 ms"),),
        )  # fmt: skip
        plan(definition, n)  # warm-up (imports, registry)
        for repeat in range(sizes.repeat):
            progress(f"W6 {shape} repeat {repeat + 1}/{sizes.repeat}")
            for _ in range(5):
                gc.collect()
                start = time.perf_counter()
                plan(definition, n)
                timing.samples.append((time.perf_counter() - start) * 1000)
        memory = Metric("W6", f"peak memory, {shape}", "MiB")
        gc.collect()
        tracemalloc.start()
        plan(definition, n)
        memory.samples.append(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
        metrics += [timing, memory]
    return metrics
