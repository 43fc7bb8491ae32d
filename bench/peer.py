"""The peer, run here: Prefect 3 in its own virtualenv (its pins would fight Turnout's).

`.venv-peer` is created on first use from `bench/peer-requirements.txt` (not an extra of
pyproject.toml: Prefect's server needs an older FastAPI than the service pins, so the two
cannot share an environment); `bench/peer_flows.py` runs there and prints its samples."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.config import Progress, Sizes
from bench.stats import Metric
from bench.workloads import fib_seconds

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("BENCH_PEER_VENV", ROOT / ".venv-peer"))
REQUIREMENTS = ROOT / "bench" / "peer-requirements.txt"


def _python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv(progress: Progress) -> Path:
    python = _python()
    check = [str(python), "-c", "import prefect"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    progress(f"creating {VENV} from {REQUIREMENTS.name} (once; a minute or two)")
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
        check=True,
        capture_output=True,
    )
    return python


def _run_flows(python: Path, sizes: Sizes) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="turnout-peer-") as home:
        env = {
            **os.environ,
            "PREFECT_HOME": home,
            "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "DO_NOT_TRACK": "1",
            # Its temporary server can take over 20 s (the default) to start on a busy box.
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        env.pop("PREFECT_API_URL", None)
        runs = [str(sizes.peer_w3_runs * sizes.repeat), str(sizes.peer_w2_runs * sizes.repeat)]
        out = subprocess.run(
            [str(python), str(ROOT / "bench" / "peer_flows.py"), *runs],
            env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    for line in out.stdout.splitlines():
        if line.startswith("PEER-RESULT "):
            result: dict[str, list[float]] = json.loads(line.removeprefix("PEER-RESULT "))
            return result
    raise RuntimeError(f"the Prefect flows printed no result:\n{out.stderr[-2000:]}")


async def run_peer(sizes: Sizes, progress: Progress) -> list[Metric]:
    try:
        python = await asyncio.to_thread(ensure_venv, progress)
        progress("PEER: Prefect 3 flows (W3 shape, W2 shape)")
        try:
            result = await asyncio.to_thread(_run_flows, python, sizes)
        except RuntimeError as first:  # Prefect's temporary server sometimes fails to start
            progress(f"PEER: first attempt failed ({str(first)[-200:]!r}); once more")
            result = await asyncio.to_thread(_run_flows, python, sizes)
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        note = f"peer unavailable: {type(exc).__name__}: {str(exc)[:300]}"
        progress(note)
        return [Metric("PEER", "Prefect 3 (not run)", "ms", note=note)]
    compute_ms = 40 * fib_seconds() * 1000
    total = Metric("PEER", "Prefect 3: 40 sequential fib(10) tasks: total", "ms")
    total.samples = result["w3_ms"]
    per_task = Metric("PEER", "Prefect 3: overhead per task", "ms")
    per_task.samples = [(t - compute_ms) / 40 for t in result["w3_ms"]]
    latency = Metric("PEER", "Prefect 3: 3-task flow call -> completed", "ms")
    latency.samples = result["w2_ms"]
    per_task.note = "flows called in-process against a local server (no queue, no worker pickup)"
    return [total, per_task, latency]
