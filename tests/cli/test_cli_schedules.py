"""`turnout schedules ...` in a subprocess against the embedded default."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import turnout, write

WORKFLOW = {
    "name": "cleanup",
    "version": "1",
    "nodes": [{"id": "a", "type": "transform", "params": {"n": "{{ input.n }}"}}],
}


def test_schedules_create_ls_get_pause_resume_delete(embedded_url: str, tmp_path: Path) -> None:
    file = write(tmp_path / "w.json", WORKFLOW)
    assert turnout("workflows", "register", file, server=embedded_url).returncode == 0
    made = turnout(
        "schedules", "create", "cleanup", "--cron", "15 3 * * *", "--timezone", "Europe/Paris",
        "--input", '{"n": 2}', "--tag", "ops", "--overlap", "buffer_one", "-o", "json",
        server=embedded_url,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    schedule = json.loads(made.stdout)
    assert (schedule["cron"], schedule["timezone"], schedule["input"]) == (
        "15 3 * * *",
        "Europe/Paris",
        {"n": 2},
    )
    assert schedule["overlap"] == "buffer_one" and len(schedule["nextFires"]) == 5

    table = turnout("schedules", "ls", server=embedded_url)
    assert table.returncode == 0 and schedule["id"] in table.stdout
    assert "cron 15 3 * * * (Europe/Paris)" in table.stdout

    got = turnout("schedules", "get", schedule["id"], server=embedded_url)
    assert got.returncode == 0 and "next fires:" in got.stdout

    paused = turnout("schedules", "pause", schedule["id"], "-o", "json", server=embedded_url)
    assert json.loads(paused.stdout)["paused"] is True
    resumed = turnout("schedules", "resume", schedule["id"], "-o", "json", server=embedded_url)
    assert json.loads(resumed.stdout)["paused"] is False

    gone = turnout("schedules", "delete", schedule["id"], server=embedded_url)
    assert gone.returncode == 0 and "deleted" in gone.stdout
    again = turnout("schedules", "get", schedule["id"], "-o", "json", server=embedded_url)
    assert again.returncode != 0
    assert json.loads(again.stdout or again.stderr)["error"]["code"] == "schedule_not_found"


def test_a_bad_cron_exits_non_zero_naming_the_field(embedded_url: str, tmp_path: Path) -> None:
    file = write(tmp_path / "w.json", WORKFLOW)
    assert turnout("workflows", "register", file, server=embedded_url).returncode == 0
    bad = turnout(
        "schedules", "create", "cleanup", "--cron", "99 * * * *", "-o", "json", server=embedded_url
    )
    assert bad.returncode != 0
    error = json.loads(bad.stdout or bad.stderr)["error"]
    assert error["code"] == "request_invalid"
    assert [d["field"] for d in error["details"]] == ["cron"]
