"""`--peers dbos,restate`: durable-execution peers run here, beside Turnout, in one table.

Both run in their own virtualenv (`.venv-peers`, from `bench/peers-requirements.txt`, made
on first use: their pins are not Turnout's) as separate processes that the harness calls
over HTTP with the same client as Turnout's API, so the client's cost is alike on both sides.

- **DBOS** (`bench/peer_dbos_app.py`): a library on Postgres; its system database is a
  throwaway database of its own on the bench's Postgres. W1-W4.
- **Restate** (`bench.peer_restate`): the `restate-server` binary from npm plus the Python
  SDK served by hypercorn. W2-W4.

Each peer row's baseline is Turnout's matching row of the same run, so its ratio reads
"peer / Turnout" (for W4, runs/s, above 1 means the peer is faster; for the rest, below 1)."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from app.store.database import make_engine
from bench.config import Progress, Sizes
from bench.services import Process, _wait_http, free_port
from bench.stats import Metric
from bench.workloads import fib_seconds

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("BENCH_PEERS_VENV", ROOT / ".venv-peers"))
REQUIREMENTS = ROOT / "bench" / "peers-requirements.txt"
PEERS = ("dbos", "restate")
W2_DEFAULT_RUNS = 5  # at DBOS's default polling one run takes about a second or two

# Turnout's rows each peer row is set beside (its baseline: same run).
TURNOUT_ROWS = {
    "W1": "immediate, 3 steps: POST -> 200",
    "W2": "queued, 3 steps: POST -> completed (SSE)",
    "W3": "overhead per step",
    "W4": "3-step runs/s, 1 API + 1 worker",
}


def python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv(progress: Progress) -> Path:
    """`.venv-peers` with the pinned peers installed (made once; a minute or so)."""
    check = [str(python()), "-c", "import dbos, restate, hypercorn, uvicorn, fastapi"]
    if python().exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python()
    progress(f"creating {VENV} from {REQUIREMENTS.name} (once; a minute or so)")
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(python()), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
        check=True, capture_output=True,
    )  # fmt: skip
    return python()


class PeerBench:
    """What a peer's workloads need: sizes, progress, processes, the Postgres admin URL."""

    def __init__(self, pg_admin_url: str, sizes: Sizes, progress: Progress) -> None:
        self.pg_admin_url = pg_admin_url
        self.sizes = sizes
        self.progress = progress
        self.logdir = Path(tempfile.mkdtemp(prefix="turnout-bench-peers-"))
        self.processes: list[Process] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        """A process of the peer, its output in a log file (its tail is in any error)."""
        proc = Process(name, argv, {**os.environ, **(env or {})}, self.logdir)
        self.processes.append(proc)
        return proc

    async def close(self) -> None:
        for proc in reversed(self.processes):
            await proc.stop()
        self.processes.clear()


async def timed(n: int, call: Callable[[], Awaitable[None]], into: list[float]) -> None:
    for _ in range(n):
        start = time.perf_counter()
        await call()
        into.append((time.perf_counter() - start) * 1000)


async def post_ok(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path)
    if response.status_code != 200:
        raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text[:300]}")


async def saturate(window_s: float, submitters: int, submit: Callable[[], Awaitable[None]]) -> None:
    deadline = time.monotonic() + window_s

    async def loop() -> None:
        while time.monotonic() < deadline:
            await submit()

    await asyncio.gather(*(loop() for _ in range(submitters)))


def per_step(metric_name: str, totals: list[float]) -> tuple[Metric, Metric]:
    """W3's total and overhead-per-step rows from totals in ms (fib(10) compute subtracted)."""
    compute_ms = 40 * fib_seconds() * 1000
    total = Metric("W3", f"{metric_name}: 40 sequential fib(10) steps: total", "ms")
    total.samples = totals
    overhead = Metric("W3", f"{metric_name}: overhead per step", "ms")
    overhead.samples = [(t - compute_ms) / 40 for t in totals]
    overhead.note = f"steps' own compute {compute_ms:.2f} ms in all, subtracted"
    return total, overhead


# --- DBOS -----------------------------------------------------------------------------------


async def _admin(url: str, statement: str) -> None:
    engine = make_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def run_dbos(pb: PeerBench, py: Path) -> list[Metric]:
    name = f"turnout_bench_dbos_{secrets.token_hex(4)}"
    admin = make_url(pb.pg_admin_url)
    db_url = admin.set(database=name)
    await _admin(pb.pg_admin_url, f'CREATE DATABASE "{name}"')
    try:
        port = free_port()
        sysdb = db_url.set(drivername="postgresql").render_as_string(hide_password=False)
        proc = pb.start(
            "dbos", [str(py), str(ROOT / "bench" / "peer_dbos_app.py"), str(port), sysdb]
        )
        base = f"http://127.0.0.1:{port}"
        await _wait_http(proc, f"{base}/healthz")
        try:
            return await _dbos_workloads(pb, base, db_url.render_as_string(hide_password=False))
        finally:
            await proc.stop()
    finally:
        await _admin(pb.pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _dbos_workloads(pb: PeerBench, base: str, db_url: str) -> list[Metric]:
    s = pb.sizes
    w1 = Metric("W1", "DBOS: 3-step workflow in a FastAPI handler: POST -> 200", "ms")
    w2_default = Metric("W2", "DBOS, default polling (1 s): enqueue, 3 steps: POST -> result", "ms")
    w2_tuned = Metric("W2", "DBOS, polling 2 ms: enqueue, 3 steps: POST -> result", "ms")
    totals: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=60.0) as client:
        for repeat in range(s.repeat):
            pb.progress(f"DBOS W1-W3 repeat {repeat + 1}/{s.repeat}")
            await timed(s.w1_warmup, lambda: post_ok(client, "/w1"), [])
            await timed(s.w1_requests, lambda: post_ok(client, "/w1"), w1.samples)
            await timed(s.w2_warmup, lambda: post_ok(client, "/w2/tuned"), [])
            await timed(s.w2_runs, lambda: post_ok(client, "/w2/tuned"), w2_tuned.samples)
            await timed(W2_DEFAULT_RUNS, lambda: post_ok(client, "/w2/default"), w2_default.samples)
            await post_ok(client, "/w3")  # warm-up
            await timed(s.w3_runs, lambda: post_ok(client, "/w3"), totals)
        w3_total, w3_step = per_step("DBOS", totals)
        w4 = Metric("W4", "DBOS: 3-step runs/s, 1 process, queue polling 2 ms", "runs/s")
        for repeat in range(s.repeat):
            pb.progress(f"DBOS W4 repeat {repeat + 1}/{s.repeat}")
            w4.samples.append(await _dbos_rate(pb, client, db_url))
    w4.note = (
        f"{s.w4_submitters} clients enqueue for {s.w4_window_s:.0f} s (POST /submit); workflows "
        "that reached SUCCESS in the window's second half, counted in dbos.workflow_status"
    )
    return [w1, w2_default, w2_tuned, w3_total, w3_step, w4]


async def _dbos_rate(pb: PeerBench, client: httpx.AsyncClient, db_url: str) -> float:
    window = pb.sizes.w4_window_s
    started = time.time()
    await saturate(window, pb.sizes.w4_submitters, lambda: post_ok(client, "/submit"))
    lo, hi = int((started + window / 2) * 1000), int((started + window) * 1000)
    engine = make_engine(db_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            done = await conn.scalar(
                text(
                    "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS' "
                    "AND name LIKE '%three_steps' AND updated_at >= :lo AND updated_at < :hi"
                ),
                {"lo": lo, "hi": hi},
            )
            # Drop the backlog, so that the next sample starts from an empty queue.
            await conn.execute(
                text(
                    "UPDATE dbos.workflow_status SET status = 'CANCELLED' WHERE status = 'ENQUEUED'"
                )
            )
            await conn.commit()
    finally:
        await engine.dispose()
    await asyncio.sleep(1.0)  # what was running when the backlog was dropped finishes
    return float(done or 0) / ((hi - lo) / 1000)


# --- all peers ------------------------------------------------------------------------------


def wanted(value: str) -> list[str]:
    names = [p.strip().lower() for p in value.split(",") if p.strip()]
    unknown = sorted(set(names) - set(PEERS))
    if unknown:
        raise ValueError(f"unknown peers: {', '.join(unknown)} (known: {', '.join(PEERS)})")
    return names


async def run_peers(
    names: list[str], pg_admin_url: str, sizes: Sizes, progress: Progress
) -> list[Metric]:
    """Each named peer's rows; a peer that cannot run gives one row saying why."""
    metrics: list[Metric] = []
    try:
        py = await asyncio.to_thread(ensure_venv, progress)
    except (OSError, subprocess.SubprocessError) as exc:
        note = f"peers unavailable: {type(exc).__name__}: {str(exc)[:300]}"
        progress(note)
        return [Metric("PEER", f"{', '.join(names)} (not run)", "", note=note)]
    for name in names:
        pb = PeerBench(pg_admin_url, sizes, progress)
        progress(f"peer {name}")
        try:
            if name == "dbos":
                metrics += await run_dbos(pb, py)
            else:
                from bench.peer_restate import run_restate

                metrics += await run_restate(pb, py)
        except (OSError, RuntimeError, httpx.HTTPError, subprocess.SubprocessError) as exc:
            note = f"{name} failed: {type(exc).__name__}: {str(exc)[:300]}"
            progress(note)
            metrics.append(Metric("PEER", f"{name} (not run)", "", note=note))
        finally:
            await pb.close()
    return metrics


def link_peers(metrics: list[Metric]) -> None:
    """Each peer row gets Turnout's matching row of the run as its baseline."""
    ours = {m.workload: m for m in metrics if m.name == TURNOUT_ROWS.get(m.workload)}
    for m in metrics:
        if not m.name.startswith(("DBOS", "Restate")) or m.workload not in ours:
            continue
        if m.workload == "W3" and not m.name.endswith("overhead per step"):
            continue
        if m.samples and ours[m.workload].samples:
            m.baseline = ours[m.workload]
