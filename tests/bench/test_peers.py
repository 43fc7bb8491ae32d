"""`python -m bench --peers dbos,restate`: the peers' code paths start and give their rows.

The peers live in their own virtualenv (`.venv-peers`) and Restate's server binary in a cache
directory; a fresh checkout has neither, and building them takes minutes and a few hundred MB.
So the two runs below carry the `peers` marker, which the default selection leaves out (as the
Prefect peer, they are part of the benchmark, not of the suite): make the peers once with
`python -m bench --peers dbos,restate`, then `scripts/test tests/bench -m peers`. Selected, a
missing peer is a skip on a laptop and a failure with CI=true, like every other prerequisite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from bench import peer_restate, peers
from bench.__main__ import parse
from bench.stats import Metric
from tests.support.prereq import missing


def test_unknown_peer_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(["--peers", "dbos,temporal"])
    assert exit_info.value.code == 2
    assert "unknown peers: temporal" in capsys.readouterr().err
    assert parse(["--peers", " DBOS , restate"]).peer_names == ["dbos", "restate"]
    assert parse([]).peer_names == []


def test_peer_rows_get_turnouts_row_of_the_same_run_as_baseline() -> None:
    def row(workload: str, name: str, median: float) -> Metric:
        return Metric(workload, name, "ms", samples=[median])

    ours_w2 = row("W2", peers.TURNOUT_ROWS["W2"], 10.0)
    ours_w3 = row("W3", peers.TURNOUT_ROWS["W3"], 0.5)
    dbos_w2 = row("W2", "DBOS, polling 2 ms: enqueue, 3 steps: POST -> result", 20.0)
    dbos_total = row("W3", "DBOS: 40 sequential fib(10) steps: total", 100.0)
    dbos_step = row("W3", "DBOS: overhead per step", 2.0)
    restate_w4 = row("W4", "Restate: 3-step runs/s, 1 server + 1 SDK process", 190.0)
    metrics = [ours_w2, ours_w3, dbos_w2, dbos_total, dbos_step, restate_w4]
    peers.link_peers(metrics)
    assert dbos_w2.baseline is ours_w2 and dbos_w2.ratio == 2.0
    assert dbos_step.baseline is ours_w3 and dbos_step.ratio == 4.0
    assert dbos_total.baseline is None  # Turnout's W3 total row is not its match
    assert restate_w4.baseline is None  # no Turnout W4 row in this run: no ratio
    assert ours_w2.baseline is None  # Turnout's rows keep their own baselines


def _run(tmp_path: Path, settings: Settings, names: str) -> dict[tuple[str, str], dict[str, Any]]:
    out = tmp_path / "bench.json"
    admin_url = settings.database_url.rsplit("/", 1)[0] + "/postgres"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "W2", "--peers", names,
         "--json", str(out), "--pg", admin_url, "--redis", settings.redis_url or ""],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(not run)" not in proc.stdout, proc.stdout + proc.stderr[-3000:]
    body = json.loads(out.read_text())
    return {(m["workload"], m["metric"]): m for m in body["metrics"]}


def _need_venv() -> None:
    if not peers.python().exists():
        missing(str(peers.VENV), "python -m bench --peers dbos makes it")


@pytest.mark.peers
def test_dbos_peer_runs_w1_to_w4_beside_turnout(tmp_path: Path, settings: Settings) -> None:
    _need_venv()
    rows = _run(tmp_path, settings, "dbos")
    turnout = rows[("W2", peers.TURNOUT_ROWS["W2"])]
    tuned = rows[("W2", "DBOS, polling 2 ms: enqueue, 3 steps: POST -> result")]
    default = rows[("W2", "DBOS, default polling (1 s): enqueue, 3 steps: POST -> result")]
    assert len(tuned["samples"]) == 10 and tuned["ratio"] is not None
    assert tuned["baseline"] == {"workload": "W2", "metric": turnout["metric"]}
    # DBOS's default polls the queue and the result once a second: it shows.
    assert default["median"] > 500 > tuned["median"]
    assert rows[("W1", "DBOS: 3-step workflow in a FastAPI handler: POST -> 200")]["samples"]
    assert rows[("W3", "DBOS: overhead per step")]["samples"]
    assert rows[("W4", "DBOS: 3-step runs/s, 1 process, queue polling 2 ms")]["median"] > 0


@pytest.mark.peers
def test_restate_peer_runs_w2_to_w4(tmp_path: Path, settings: Settings) -> None:
    _need_venv()
    if not peer_restate.BINARY.exists():
        missing(str(peer_restate.BINARY), "python -m bench --peers restate installs it")
    rows = _run(tmp_path, settings, "restate")
    w2 = rows[("W2", "Restate: 3 ctx.run steps: POST -> result (ingress)")]
    assert len(w2["samples"]) == 10 and w2["ratio"] is not None
    assert rows[("W3", "Restate: overhead per step")]["samples"]
    assert rows[("W4", "Restate: 3-step runs/s, 1 server + 1 SDK process")]["median"] > 0
