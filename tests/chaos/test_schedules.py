"""Schedules across real processes: every slot fires once, whichever process is killed.

Two API processes and one worker all run the scheduler loop on one Postgres database; the
slots each fired are read back from the database (`schedule_slot` of each execution)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from tests.support.workers import api_process, worker_process

EVERY_MS = 1000
ENV = {"TURNOUT_SCHEDULE_TICK_MS": "100"}
WORKFLOW = {
    "name": "tick",
    "version": "1",
    "nodes": [{"id": "a", "type": "transform", "params": {"n": "{{ input.n }}"}}],
}


@contextlib.contextmanager
def three_processes(settings: Settings) -> Iterator[tuple[dict[int, Any], str]]:
    """Two API processes and a worker; yields them by pid, and one API's base URL."""
    with (
        api_process(settings, **ENV) as (first, base),
        api_process(settings, **ENV) as (second, _),
        worker_process(settings, **ENV) as worker,
    ):
        yield {p.pid: p for p in (first, second, worker)}, base


def create_schedule(base: str, **fields: Any) -> dict[str, Any]:
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.post("/workflows", json=WORKFLOW).status_code == 201
        body = {"workflow": "tick", "everyMs": EVERY_MS, "input": {"n": 1}, **fields}
        answer = client.post("/schedules", json=body)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())


def pause(base: str, schedule_id: str) -> datetime:
    with httpx.Client(base_url=base, timeout=30) as client:
        answer = client.patch(f"/schedules/{schedule_id}", json={"paused": True})
        assert answer.status_code == 200, answer.text
    return datetime.now(UTC)


async def fired(engine: AsyncEngine, schedule_id: str) -> list[tuple[datetime, str]]:
    """Every (slot, firing process) of the schedule, in slot order."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT schedule_slot, metadata->>'firedBy' FROM workflow_executions "
                "WHERE schedule_id = :id ORDER BY schedule_slot"
            ),
            {"id": UUID(schedule_id)},
        )
        return [(slot, by) for slot, by in rows]


def expected_slots(after: datetime, until: datetime) -> list[datetime]:
    """Every multiple of EVERY_MS since the epoch in (after, until]."""
    step = timedelta(milliseconds=EVERY_MS)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    at = epoch + ((after - epoch) // step + 1) * step
    out = []
    while at <= until:
        out.append(at)
        at += step
    return out


def assert_contiguous(slots: list[datetime]) -> None:
    assert len(slots) == len(set(slots)), "a slot fired twice"
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(g == timedelta(milliseconds=EVERY_MS) for g in gaps), f"a slot is missing: {slots}"


async def test_three_processes_fire_every_slot_exactly_once(
    settings: Settings, engine: AsyncEngine
) -> None:
    with three_processes(settings) as (_, base):
        schedule = create_schedule(base, overlap="allow_all")
        created = datetime.fromisoformat(schedule["createdAt"])
        await asyncio.sleep(10)
        paused_at = pause(base, schedule["id"])
        await asyncio.sleep(1)  # a fire that started just before the pause ends
    rows = await fired(engine, schedule["id"])
    slots = [slot for slot, _ in rows]
    assert_contiguous(slots)
    # Every slot between the creation and the pause: none missed, none invented. The last
    # one may still have been within the tick when the pause came.
    expected = expected_slots(created, paused_at)
    assert len(expected) >= 9
    assert slots in (expected, expected[:-1]), (slots, expected)
    async with engine.connect() as conn:
        late = (
            await conn.execute(
                text(
                    "SELECT max(created_at - schedule_slot), avg(created_at - schedule_slot) "
                    "FROM workflow_executions WHERE schedule_id = :id"
                ),
                {"id": UUID(schedule["id"])},
            )
        ).one()
    pids = sorted({by.split(":")[2] for _, by in rows})
    print(f"fired by pids {pids}; late max {late[0]} avg {late[1]}")


async def test_killing_the_process_that_fired_the_last_slot_loses_no_slot(
    settings: Settings, engine: AsyncEngine
) -> None:
    with three_processes(settings) as (processes, base):
        schedule = create_schedule(base, overlap="allow_all")
        created = datetime.fromisoformat(schedule["createdAt"])
        deadline = time.monotonic() + 20
        while len(rows := await fired(engine, schedule["id"])) < 3:
            assert time.monotonic() < deadline, "the schedule did not fire"
            await asyncio.sleep(0.1)
        last_by = rows[-1][1]
        pid = int(last_by.split(":")[2])
        os.kill(pid, signal.SIGKILL)
        processes[pid].wait()
        killed_at = datetime.now(UTC)
        await asyncio.sleep(4)
        stopped_at = datetime.now(UTC)
    rows = await fired(engine, schedule["id"])
    slots = [slot for slot, _ in rows]
    assert_contiguous(slots)
    assert slots[0] == expected_slots(created, created + timedelta(seconds=2))[0]
    # The slot after the kill and every later one, up to a tick before the others stopped.
    after_kill = expected_slots(killed_at, stopped_at - timedelta(milliseconds=1500))
    assert len(after_kill) >= 2
    assert set(after_kill) <= set(slots), (after_kill, slots)
    assert all(by != last_by for slot, by in rows if slot > killed_at + timedelta(seconds=1))


async def test_auto_start_runs_once_with_two_processes_registering_at_once(
    settings: Settings, engine: AsyncEngine
) -> None:
    definition = {**WORKFLOW, "name": "boot", "autoStart": True}
    with (
        api_process(settings, **ENV) as (_, first),
        api_process(settings, **ENV) as (_, second),
    ):

        async def register(base: str) -> int:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                return (await client.post("/workflows", json=definition)).status_code

        for _ in range(3):  # a redeploy registering again starts nothing more
            statuses = await asyncio.gather(*(register(b) for b in (first, second, first)))
            assert sorted(statuses) in ([201, 409, 409], [409, 409, 409])
    async with engine.connect() as conn:
        keys = (
            await conn.scalars(
                text("SELECT idempotency_key FROM workflow_executions WHERE workflow_id = 'boot'")
            )
        ).all()
    assert keys == ["autostart:default:boot:1"]
