"""W1-W5 and W7: Turnout's API and workers as separate processes, each beside its baseline."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.store.database import make_engine
from bench import client, workflows
from bench.config import Progress, Sizes
from bench.nodes import fib
from bench.services import Namespace, Services
from bench.stats import Metric, Target


class Bench:
    """What every workload needs: the run's namespace, its processes, sizes and progress."""

    def __init__(self, ns: Namespace, services: Services, sizes: Sizes, progress: Progress):
        self.ns = ns
        self.services = services
        self.sizes = sizes
        self.progress = progress
        self._api: str | None = None
        self.api_pid = 0

    async def api(self) -> str:
        """The one Turnout API process of the run (started on first use)."""
        if self._api is None:
            proc, self._api = await self.services.start_api()
            self.api_pid = proc.proc.pid
        return self._api


def http_client(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, timeout=60.0)


async def _samples(
    n: int, call: Callable[[], Awaitable[float]], into: list[float], scale: float = 1000.0
) -> None:
    for _ in range(n):
        into.append(await call() * scale)


async def w1_immediate(b: Bench) -> list[Metric]:
    """POST -> 200 of three transforms, interleaved with the bare insert-and-commit baseline."""
    base_metric = Metric("W1", "bare FastAPI insert+commit (baseline)", "ms")
    metric = Metric(
        "W1", "immediate, 3 steps: POST -> 200", "ms", baseline=base_metric,
        targets=(Target("ratio_max", 1.5, "<= 1.5x baseline (issue 18)"),),
    )  # fmt: skip
    await _create_baseline_table(b.ns.database_url)
    _, baseline_url = await b.services.start_api("baseline", app="bench.baseline_app:app")
    workflow = workflows.three_steps()
    async with http_client(await b.api()) as api, http_client(baseline_url) as bare:
        for repeat in range(b.sizes.repeat):
            b.progress(f"W1 repeat {repeat + 1}/{b.sizes.repeat}")
            for _ in range(b.sizes.w1_warmup):
                await client.run_immediate(api, workflow)
                await client.post_baseline(bare, workflow)
            # Interleaved, so the machine's drift hits both sides alike.
            for _ in range(b.sizes.w1_requests):
                metric.samples.append(await client.run_immediate(api, workflow) * 1000)
                base_metric.samples.append(await client.post_baseline(bare, workflow) * 1000)
    return [metric, base_metric]


async def _create_baseline_table(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS bench_baseline (id bigserial PRIMARY KEY, "
                    "created_at timestamptz NOT NULL DEFAULT now(), payload jsonb NOT NULL)"
                )
            )
    finally:
        await engine.dispose()


async def w2_queued_latency(b: Bench) -> list[Metric]:
    """POST -> `execution.completed` seen on the stream, one idle worker, one run at a time."""
    metric = Metric(
        "W2", "queued, 3 steps: POST -> completed (SSE)", "ms",
        targets=(Target("max", 15.0, "median <= 15 ms"),),
    )  # fmt: skip
    worker = await b.services.start_worker("worker-w2")
    workflow = workflows.three_steps()
    try:
        async with http_client(await b.api()) as api:
            for repeat in range(b.sizes.repeat):
                b.progress(f"W2 repeat {repeat + 1}/{b.sizes.repeat}")
                for _ in range(b.sizes.w2_warmup):
                    await client.run_queued(api, workflow)
                await _samples(
                    b.sizes.w2_runs, lambda: client.run_queued(api, workflow), metric.samples
                )
    finally:
        await b.services.stop(worker)
    return [metric]


def fib_seconds(n: int = 10, rounds: int = 2000) -> float:
    """The steps' own compute: one fib(n), timed in this process (best of 5)."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            fib(n)
        best = min(best, (time.perf_counter() - start) / rounds)
    return best


async def w3_sequential(b: Bench, heartbeat_ms: int | None = None) -> list[Metric]:
    """40 sequential fib(10) steps in one queued run: total, and overhead per step."""
    label = "" if heartbeat_ms is None else f" (heartbeat {heartbeat_ms} ms)"
    total = Metric("W3", f"queued, 40 sequential fib(10) steps: total{label}", "ms")
    per_step = Metric(
        "W3", f"overhead per step{label}", "ms",
        targets=(Target("max", 5.0, "<= 5 ms"),) if heartbeat_ms is None else (),
    )  # fmt: skip
    env = None
    if heartbeat_ms is not None:
        env = b.ns.env(
            TURNOUT_HEARTBEAT_MS=str(heartbeat_ms), TURNOUT_LEASE_MS=str(heartbeat_ms * 3)
        )
    worker = await b.services.start_worker("worker-w3", env=env)
    workflow = workflows.fib_chain(40, 10)
    compute_s = 40 * fib_seconds()
    try:
        async with http_client(await b.api()) as api:
            await client.run_queued(api, workflow)  # warm-up
            for repeat in range(b.sizes.repeat):
                b.progress(f"W3{label} repeat {repeat + 1}/{b.sizes.repeat}")
                for _ in range(b.sizes.w3_runs):
                    elapsed = await client.run_queued(api, workflow)
                    total.samples.append(elapsed * 1000)
                    per_step.samples.append((elapsed - compute_s) / 40 * 1000)
    finally:
        await b.services.stop(worker)
    per_step.note = f"steps' own compute {compute_s * 1000:.2f} ms in all, subtracted"
    return [total, per_step]


async def w5_fan_out(b: Bench) -> list[Metric]:
    """One queued run: a foreach of 1,000 transform items, 50 at a time."""
    metric = Metric("W5", f"foreach of {b.sizes.w5_items} items, concurrency 50", "ms")
    worker = await b.services.start_worker("worker-w5")
    workflow = workflows.fan_out(b.sizes.w5_items, 50)
    payload = {"items": list(range(b.sizes.w5_items))}
    try:
        async with http_client(await b.api()) as api:
            for repeat in range(b.sizes.repeat):
                b.progress(f"W5 repeat {repeat + 1}/{b.sizes.repeat}")
                metric.samples.append(await client.run_queued(api, workflow, payload) * 1000)
    finally:
        await b.services.stop(worker)
    return [metric]


def _pgbench() -> str | None:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))
    return str(candidates[-1]) if candidates else None


async def w7_commit_ceiling(b: Bench) -> list[Metric]:
    """pgbench: single-row INSERT transactions per second, 1 and 8 clients (reference only)."""
    binary = _pgbench()
    if binary is None:
        return [Metric("W7", "pgbench not found: skipped", "tps")]
    url = make_url(b.ns.database_url)
    engine = make_engine(b.ns.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS bench_tps (v int)"))
    finally:
        await engine.dispose()
    metrics = []
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write("INSERT INTO bench_tps (v) VALUES (1);\n")
    try:
        for clients in (1, 8):
            metric = Metric("W7", f"pgbench single-row insert, {clients} client(s)", "tps")
            for repeat in range(b.sizes.repeat):
                b.progress(f"W7 {clients} client(s) repeat {repeat + 1}/{b.sizes.repeat}")
                metric.samples.append(
                    await asyncio.to_thread(_run_pgbench, binary, url, script.name, clients, b)
                )
            metrics.append(metric)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(script.name)
    return metrics


def _run_pgbench(binary: str, url: Any, script: str, clients: int, b: Bench) -> float:
    argv = [
        binary, "-n", "-f", script, "-c", str(clients), "-j", str(min(clients, 2)),
        "-T", str(b.sizes.w7_seconds), "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
        "-U", url.username or "postgres", url.database,
    ]  # fmt: skip
    env = {**os.environ, **({"PGPASSWORD": url.password} if url.password else {})}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    for line in out.splitlines():
        if line.startswith("tps ="):
            return float(line.split("=")[1].split()[0])
    raise RuntimeError(f"pgbench printed no tps:\n{out}")
