"""`turnout run --batch FILE`: JSONL or a JSON array, one result per run, exit 1 if any refused."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import turnout
from tests.client.conftest import HELLO


def test_run_batch_from_jsonl_and_json_array(embedded_url: str, tmp_path: Path) -> None:
    lines = tmp_path / "runs.jsonl"
    lines.write_text(
        "\n".join(json.dumps({"workflow": HELLO, "input": {"name": n}}) for n in ("a", "b")) + "\n"
    )
    done = turnout("run", "--batch", str(lines), "-o", "json", server=embedded_url)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(r["index"], r["httpStatus"]) for r in rows] == [(0, 202), (1, 202)]
    assert "2 queued, 0 refused" in done.stderr
    ids = [r["execution"]["executionId"] for r in rows]
    for execution_id in ids:
        waited = turnout(
            "wait", execution_id, "--timeout", "20s", "-o", "json", server=embedded_url
        )
        assert waited.returncode == 0, waited.stderr

    array = json.dumps([{"workflow": HELLO}, {"workflowId": "missing"}])
    mixed = turnout("run", "--batch", "-", "-o", "jsonl", server=embedded_url, stdin=array)
    assert mixed.returncode == 1
    rows = [json.loads(line) for line in mixed.stdout.splitlines()]
    assert [r["httpStatus"] for r in rows] == [202, 404]
    assert rows[1]["error"]["code"] == "workflow_not_found"
    table = turnout("run", "--batch", "-", server=embedded_url, stdin=array)
    assert "workflow_not_found" in table.stdout and table.returncode == 1


def test_run_batch_refuses_a_bad_file_before_sending(embedded_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"workflow": {}}\nnot json\n')
    answer = turnout("run", "--batch", str(bad), server=embedded_url)
    assert answer.returncode == 2 and "line 2 is not JSON" in answer.stderr
    both = turnout("run", "flow.json", "--batch", str(bad), server=embedded_url)
    assert both.returncode == 2 and "--batch" in both.stderr
