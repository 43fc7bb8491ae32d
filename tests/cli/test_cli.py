"""`turnout` from a terminal, against the embedded default: exit codes and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import popen, turnout, write
from tests.client.conftest import APPROVAL, HELLO, delays
from turnout import Client

FAILING = {"name": "failing", "nodes": [{"id": "f", "type": "fail", "params": {"message": "no"}}]}
BAD = {
    "name": "bad",
    "nodes": [
        {"id": "a", "type": "transform", "params": {"x": "{{ b.x }}"}},
        {"id": "b", "type": "transform", "params": {"x": "{{ a.x }}"}},
        {"id": "c", "type": "nope"},
    ],
}


def test_run_follows_to_the_end_json_on_stdout_progress_on_stderr(
    embedded_url: str, tmp_path: Path
) -> None:
    file = write(tmp_path / "d.json", delays(3))
    done = turnout("run", file, "--mode", "queued", "-o", "json", server=embedded_url)
    assert done.returncode == 0, done.stderr
    execution = json.loads(done.stdout)  # one JSON document and nothing else
    assert execution["status"] == "completed" and execution["mode"] == "queued"
    assert "step.completed" in done.stderr and "execution.completed" in done.stderr

    hello = write(tmp_path / "h.json", HELLO)
    immediate = turnout(
        "run", hello, "--input", '{"name": "Ada"}', "-o", "json", server=embedded_url
    )
    assert immediate.returncode == 0
    assert json.loads(immediate.stdout)["result"] == {"message": "Hello, Ada!"}


def test_run_exit_codes(embedded_url: str, tmp_path: Path) -> None:
    failed = turnout("run", write(tmp_path / "f.json", FAILING), "-o", "json", server=embedded_url)
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["error"]["message"] == "no"

    invalid = turnout("run", write(tmp_path / "b.json", BAD), "-o", "json", server=embedded_url)
    assert invalid.returncode == 2
    problems = json.loads(invalid.stdout)["error"]["details"]
    assert {p["code"] for p in problems} == {"unknown_type", "cycle"}
    assert "cycle: a -> b -> a" in invalid.stderr and "unknown node type 'nope'" in invalid.stderr

    approval = write(tmp_path / "a.json", APPROVAL)
    timed_out = turnout("run", approval, "--wait-timeout", "1s", server=embedded_url)
    assert timed_out.returncode == 3 and "still not finished" in timed_out.stderr

    unreachable = turnout("ls", server="http://127.0.0.1:9")
    assert unreachable.returncode == 4 and "cannot reach" in unreachable.stderr

    for usage in (
        ("run", approval, "--mode", "fast"),
        ("run", approval, "--input", "{not json"),
        ("run", approval, "--timeout", "soon"),
        ("ls", "--bogus"),
    ):
        result = turnout(*usage, server=embedded_url)
        assert result.returncode == 2, (usage, result.stderr)
        assert result.stdout == ""


def test_detach_then_follow_events_as_jsonl_and_give_input(
    embedded_url: str, tmp_path: Path
) -> None:
    approval = write(tmp_path / "a.json", APPROVAL)
    detached = turnout("run", approval, "--detach", "-o", "json", server=embedded_url)
    assert detached.returncode == 0
    execution_id = json.loads(detached.stdout)["executionId"]
    follower = popen("events", execution_id, "--follow", "-o", "jsonl", server=embedded_url)
    with Client(embedded_url) as client:
        next(e for e in client.stream(execution_id) if e.type == "execution.waiting")
    invalid = turnout(
        "input", execution_id, "approve", "--data", '{"nope": 1}', server=embedded_url
    )
    assert invalid.returncode == 2
    (tmp_path / "data.json").write_text('{"approved": true}')
    given = turnout(
        "input",
        execution_id,
        "approve",
        "--data",
        f"@{tmp_path / 'data.json'}",
        server=embedded_url,
    )
    assert given.returncode == 0, given.stderr
    out, _ = follower.communicate(timeout=30)
    assert follower.returncode == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "execution.completed"

    stored = turnout("events", execution_id, "--after", "2", "-o", "json", server=embedded_url)
    assert [e["seq"] for e in json.loads(stored.stdout)] == [e["seq"] for e in events[2:]]
    got = turnout("get", execution_id, "-o", "json", server=embedded_url)
    assert json.loads(got.stdout)["result"] == {"approved": True}


def test_ls_and_get_tables_are_not_truncated_when_piped(embedded_url: str, tmp_path: Path) -> None:
    long_name = "a-workflow-with-a-very-long-name-" + "x" * 120
    file = write(tmp_path / "h.json", {**HELLO, "name": long_name})
    ran = turnout(
        "run", file, "-i", '{"name": "P"}', "--tag", "piped", "-o", "json", server=embedded_url
    )
    execution_id = json.loads(ran.stdout)["executionId"]
    listed = turnout("ls", "--tag", "piped", server=embedded_url)
    assert listed.returncode == 0
    assert execution_id in listed.stdout and long_name in listed.stdout
    assert "…" not in listed.stdout
    shown = turnout("get", execution_id, server=embedded_url)
    assert long_name in shown.stdout and '{"message": "Hello, P!"}' in shown.stdout
    lines = turnout("ls", "--tag", "piped", "-o", "jsonl", server=embedded_url).stdout
    assert [json.loads(line)["executionId"] for line in lines.splitlines()] == [execution_id]


def test_control_verbs_report_each_result(embedded_url: str, tmp_path: Path) -> None:
    with Client(embedded_url) as client:
        parked = client.run(APPROVAL, mode="queued")
        next(e for e in client.stream(parked.id) if e.type == "execution.waiting")
        done = client.run(HELLO, {"name": "x"})
        failed = client.run(FAILING)
    paused = turnout("pause", parked.id, done.id, "-o", "json", server=embedded_url)
    assert paused.returncode == 1  # one of the two could not be paused
    first, second = json.loads(paused.stdout)
    assert first["status"] == "paused" and first["changed"] is True
    assert second["error"]["code"] == "invalid_transition"
    assert "invalid_transition" in paused.stderr
    resumed = turnout("resume", parked.id, server=embedded_url)
    assert resumed.returncode == 0 and f"{parked.id}  resumed" in resumed.stdout
    retried = turnout("retry", failed.id, "--from", "start", "-o", "json", server=embedded_url)
    assert retried.returncode == 0 and json.loads(retried.stdout)["attempt"] == 2
    assert turnout("retry", failed.id, "--from", "middle", server=embedded_url).returncode == 2
    cancelled = turnout("cancel", parked.id, "-o", "jsonl", server=embedded_url)
    assert cancelled.returncode == 0
    assert json.loads(cancelled.stdout)["status"] == "cancelled"


def test_bulk_cancel_asks_unless_yes(embedded_url: str) -> None:
    with Client(embedded_url) as client:
        ids = {client.run(APPROVAL, mode="queued", tags=["bulk"]).id for _ in range(3)}
        client.run(APPROVAL, mode="queued", tags=["other"])
    refused = turnout("cancel", "--tag", "bulk", server=embedded_url, stdin="")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    with Client(embedded_url) as client:
        assert all(client.get(i).status != "cancelled" for i in ids)
    done = turnout("cancel", "--tag", "bulk", "--yes", "-o", "json", server=embedded_url)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert {r["executionId"] for r in results} == ids
    assert {r["status"] for r in results} == {"cancelled"}
    with Client(embedded_url) as client:
        assert [e.status for e in client.list(tag="other")] != ["cancelled"]
    assert turnout("cancel", server=embedded_url).returncode == 2


def test_workflows_register_ls_show_and_run_by_name(embedded_url: str, tmp_path: Path) -> None:
    file = write(tmp_path / "h.json", {**HELLO, "version": "1"})
    registered = turnout("workflows", "register", file, "-o", "json", server=embedded_url)
    assert registered.returncode == 0 and json.loads(registered.stdout)["version"] == "1"
    again = turnout("workflows", "register", file, server=embedded_url)
    assert again.returncode == 1 and "workflow_version_exists" in again.stderr
    listed = json.loads(turnout("workflows", "ls", "-o", "json", server=embedded_url).stdout)
    assert [(w["name"], w.get("version", w.get("latestVersion"))) for w in listed] == [
        ("hello", "1")
    ]
    shown = turnout("workflows", "show", "hello", "-o", "json", server=embedded_url)
    assert json.loads(shown.stdout)["definition"]["nodes"][0]["id"] == "greet"
    missing = turnout("workflows", "show", "nope", server=embedded_url)
    assert missing.returncode == 1
    ran = turnout("run", "hello", "-i", '{"name": "Reg"}', "-o", "json", server=embedded_url)
    assert json.loads(ran.stdout)["result"] == {"message": "Hello, Reg!"}
