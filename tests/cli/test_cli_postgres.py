"""`turnout run` on Postgres + Redis with an arq worker process."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import turnout, write
from tests.client.conftest import delays


def test_run_on_a_worker_streams_jsonl_then_get(postgres_url: str, tmp_path: Path) -> None:
    file = write(tmp_path / "d.json", delays(4))
    ran = turnout(
        "run", file, "--mode", "queued", "--priority", "7", "-o", "jsonl", server=postgres_url
    )
    assert ran.returncode == 0, ran.stderr
    events = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "execution.created" and events[-1]["type"] == "execution.completed"
    assert sum(e["type"] == "step.completed" for e in events) == 4
    got = json.loads(
        turnout("get", events[0]["executionId"], "-o", "json", server=postgres_url).stdout
    )
    assert got["status"] == "completed" and got["priority"] == 7 and got["mode"] == "queued"
    waited = turnout("wait", got["executionId"], "--timeout", "5s", server=postgres_url)
    assert waited.returncode == 0 and "completed" in waited.stdout
