"""The Restate peer: the `restate-server` binary (npm package `@restatedev/restate-server`,
installed once into a cache directory outside the repository) and the Python SDK's service
(`bench/peer_restate_app.py`) served by hypercorn from `.venv-peers`. W2-W4 through
Restate's HTTP ingress, with the same client as Turnout's.

- W2: `POST /bench/three_steps` answers once the invocation finished (Restate pushes each
  invocation to the service, so there is no polling to tune);
- W3: `POST /bench/forty_steps`, 40 sequential `ctx.run` steps;
- W4: clients keep sending `POST /bench/three_steps/send` (accepted, not awaited) and the
  handlers that reached their end in the window's second half are counted."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.peers import PeerBench, per_step, saturate, timed
from bench.services import ServiceError, _wait_http, free_port
from bench.stats import Metric

VERSION = "1.7.12"
PACKAGE = "@restatedev/restate-server"
CACHE = (
    Path(os.environ.get("BENCH_RESTATE_DIR", Path.home() / ".cache" / "turnout-bench"))
    / f"restate-server-{VERSION}"
)
BINARY = (
    CACHE / "node_modules" / "@restatedev" / "restate-server-linux-x64" / "bin" / "restate-server"
)
HEADERS = {"content-type": "application/json"}
HERE = Path(__file__).resolve().parent


def ensure_binary() -> Path:
    """The server binary, `npm install`ed into CACHE on first use (about 200 MB)."""
    if BINARY.exists():
        return BINARY
    npm = shutil.which("npm")
    if npm is None:
        raise ServiceError("npm is not installed: it fetches the restate-server binary")
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(CACHE),
         f"{PACKAGE}@{VERSION}"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    if not BINARY.exists():
        raise ServiceError(f"npm installed {PACKAGE} but {BINARY} is not there")
    return BINARY


async def run_restate(pb: PeerBench, py: Path) -> list[Metric]:
    pb.progress(f"Restate {VERSION}: server binary in {CACHE}")
    binary = await asyncio.to_thread(ensure_binary)
    data = Path(tempfile.mkdtemp(prefix="turnout-bench-restate-"))
    try:
        ingress, admin, node, sdk = (free_port() for _ in range(4))
        env = {
            "RESTATE_INGRESS__BIND_ADDRESS": f"127.0.0.1:{ingress}",
            "RESTATE_ADMIN__BIND_ADDRESS": f"127.0.0.1:{admin}",
            "RESTATE_BIND_ADDRESS": f"127.0.0.1:{node}",
            "RESTATE_DISABLE_TELEMETRY": "true",
            "RESTATE_LOG_FILTER": "warn",
        }
        argv = [str(binary), "--base-dir", str(data), "--listen-mode", "tcp", "--no-logo"]
        server = pb.start("restate-server", argv, env)
        service = pb.start(
            "restate-sdk",
            [str(py), "-m", "hypercorn", "--bind", f"127.0.0.1:{sdk}", "peer_restate_app:app"],
            {"PYTHONPATH": str(HERE)},
        )
        await _wait_http(server, f"http://127.0.0.1:{admin}/health")
        await _wait_http(service, f"http://127.0.0.1:{sdk}/stats")
        async with httpx.AsyncClient(timeout=30.0) as client:
            response = await client.post(
                f"http://127.0.0.1:{admin}/deployments", json={"uri": f"http://127.0.0.1:{sdk}"}
            )
            if response.status_code >= 300:
                raise ServiceError(f"registering the deployment: {response.text[:300]}")
        return await _workloads(pb, f"http://127.0.0.1:{ingress}", f"http://127.0.0.1:{sdk}")
    finally:
        await pb.close()
        shutil.rmtree(data, ignore_errors=True)


async def _call(client: httpx.AsyncClient, path: str, value: int) -> None:
    response = await client.post(path, content=str(value), headers=HEADERS)
    if response.status_code not in (200, 202):
        raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text[:300]}")


async def _workloads(pb: PeerBench, ingress: str, sdk: str) -> list[Metric]:
    s = pb.sizes
    w2 = Metric("W2", "Restate: 3 ctx.run steps: POST -> result (ingress)", "ms")
    totals: list[float] = []
    async with httpx.AsyncClient(base_url=ingress, timeout=60.0) as client:
        for repeat in range(s.repeat):
            pb.progress(f"Restate W2-W3 repeat {repeat + 1}/{s.repeat}")
            await timed(s.w2_warmup, lambda: _call(client, "/bench/three_steps", 1), [])
            await timed(s.w2_runs, lambda: _call(client, "/bench/three_steps", 1), w2.samples)
            await _call(client, "/bench/forty_steps", 10)  # warm-up
            await timed(s.w3_runs, lambda: _call(client, "/bench/forty_steps", 10), totals)
        w3_total, w3_step = per_step("Restate", totals)
        w4 = Metric("W4", "Restate: 3-step runs/s, 1 server + 1 SDK process", "runs/s")
        async with httpx.AsyncClient(base_url=sdk, timeout=30.0) as stats:
            for repeat in range(s.repeat):
                pb.progress(f"Restate W4 repeat {repeat + 1}/{s.repeat}")
                w4.samples.append(await _rate(pb, client, stats))
    w4.note = (
        f"{s.w4_submitters} clients send (POST .../send) for {s.w4_window_s:.0f} s; handlers "
        "that reached their end in the window's second half"
    )
    return [w2, w3_total, w3_step, w4]


async def _rate(pb: PeerBench, client: httpx.AsyncClient, stats: httpx.AsyncClient) -> float:
    window = pb.sizes.w4_window_s
    started = time.time()
    await saturate(
        window, pb.sizes.w4_submitters, lambda: _call(client, "/bench/three_steps/send", 1)
    )
    lo, hi = started + window / 2, started + window
    times: list[float] = (await stats.get("/stats")).json()["completions"]
    done = sum(1 for t in times if lo <= t < hi)
    await _drain(stats, len(times))
    return done / (hi - lo)


async def _drain(stats: httpx.AsyncClient, seen: int, quiet_s: float = 1.0) -> None:
    """Wait until the backlog is done (no completion for `quiet_s`), so that the next sample
    starts from an empty queue (Restate has no bulk cancel to drop it with)."""
    last = seen
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet_s)
        now = len((await stats.get("/stats")).json()["completions"])
        if now == last:
            return
        last = now
    raise RuntimeError("Restate's backlog did not drain within 120 s")
