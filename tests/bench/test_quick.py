"""The benchmark harness still runs: `python -m bench --quick --only W1,W2` (no timing checks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app.config import Settings


def test_quick_run_writes_samples_for_w1_and_w2(tmp_path: Path, settings: Settings) -> None:
    out = tmp_path / "bench.json"
    admin_url = settings.database_url.rsplit("/", 1)[0] + "/postgres"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "W1,W2", "--json", str(out),
         "--pg", admin_url, "--redis", settings.redis_url or ""],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| W1 |" in proc.stdout and "| W2 |" in proc.stdout
    body = json.loads(out.read_text())
    rows = {(m["workload"], m["metric"]): m for m in body["metrics"]}
    immediate = rows[("W1", "immediate, 3 steps: POST -> 200")]
    assert len(immediate["samples"]) == 50 and immediate["ratio"] is not None
    assert len(rows[("W2", "queued, 3 steps: POST -> completed (SSE)")]["samples"]) == 10
    assert body["machine"]["cores"] >= 1


def test_dashboard_bench_runs_and_open_pages_hold_no_connection(
    tmp_path: Path, settings: Settings
) -> None:
    out = tmp_path / "dashboard.json"
    admin_url = settings.database_url.rsplit("/", 1)[0] + "/postgres"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.dashboard", "--executions", "200", "--pages", "20",
         "--repeat", "3", "--json", str(out), "--pg", admin_url,
         "--redis", settings.redis_url or ""],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    body = json.loads(out.read_text())
    assert {"list", "execution1000", "openPages"} <= set(body), proc.stderr[-3000:]
    assert body["execution1000"]["bytes"] > 100_000  # the 1,000 outline rows are there
    pages = body["openPages"]
    assert pages["streamsOpen"] == 20
    assert pages["busyWhileOpenMax"] == 0 and pages["added"] <= 0
