"""The scheduler's passes on the real database: overlap policies, catch-up, jitter, pause.

Each test builds a real Runtime (Postgres, Redis queue, no worker: a queued run stays
`pending`, so it is "still going" for the overlap policy) and calls `run_once` at chosen
times, so a slot's fate does not depend on the machine's speed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import update

from app.config import Settings
from app.engine.status import Status
from app.execution.scheduler import AUTO_START_GRACE
from app.runtime import Runtime, build_runtime
from app.store.schedules import ScheduleRecord, ScheduleStore
from app.store.tables import schedules

WORKFLOW: dict[str, Any] = {
    "name": "nightly",
    "version": "1",
    "nodes": [{"id": "a", "type": "transform", "params": {"n": 1}}],
}
T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    quiet = settings.model_copy(update={"schedule_tick_ms": 0, "schedule_grace_ms": 0})
    runtime = build_runtime(quiet, "api")
    await runtime.start()
    await runtime.repo.create_workflow("nightly", "1", WORKFLOW)
    try:
        yield runtime
    finally:
        await runtime.close()


async def make_schedule(runtime: Runtime, **values: Any) -> ScheduleRecord:
    row = {
        "id": uuid4(),
        "namespace": "default",
        "workflow_name": "nightly",
        "workflow_version": None,
        "cron": None,
        "timezone": "UTC",
        "every_ms": 60_000,
        "input": {},
        "mode": "queued",
        "priority": 0,
        "tags": ["nightly"],
        "overlap": "skip",
        "catchup_window_ms": 60_000,
        "jitter_ms": 0,
        "paused": False,
        "next_slot": T0,
        **values,
    }
    return await ScheduleStore(runtime.repo.engine).create(row)


async def slots_of(runtime: Runtime, schedule_id: UUID) -> dict[datetime, str]:
    runs = await ScheduleStore(runtime.repo.engine).recent_runs(schedule_id, 1000)
    return {run.schedule_slot: run.status for run in runs if run.schedule_slot}


async def current(runtime: Runtime, schedule_id: UUID) -> ScheduleRecord:
    found = await ScheduleStore(runtime.repo.engine).get(schedule_id)
    assert found is not None
    return found


async def test_a_fire_is_an_execution_carrying_its_schedule_and_slot(runtime: Runtime) -> None:
    schedule = await make_schedule(runtime, tags=["a", "b"], priority=7, input={"x": 1})
    assert await runtime.scheduler.run_once(T0 + SECOND) == 1
    assert await runtime.scheduler.run_once(T0 + 2 * SECOND) == 0  # the same slot: no-op
    runs = await ScheduleStore(runtime.repo.engine).recent_runs(schedule.id)
    assert len(runs) == 1
    run = runs[0]
    assert (run.schedule_id, run.schedule_slot) == (schedule.id, T0)
    assert (run.tags, run.priority, run.input, run.workflow_version) == (
        ["a", "b"],
        7,
        {"x": 1},
        "1",
    )
    after = await current(runtime, schedule.id)
    assert (after.next_slot, after.fired, after.last_slot) == (T0 + 60 * SECOND, 1, T0)


async def test_skip_drops_a_slot_while_the_previous_run_is_going(runtime: Runtime) -> None:
    schedule = await make_schedule(runtime, overlap="skip")
    await runtime.scheduler.run_once(T0)
    await runtime.scheduler.run_once(T0 + 60 * SECOND)
    assert list(await slots_of(runtime, schedule.id)) == [T0]
    assert (await current(runtime, schedule.id)).skipped == 1


async def test_allow_all_fires_every_slot(runtime: Runtime) -> None:
    schedule = await make_schedule(runtime, overlap="allow_all")
    await runtime.scheduler.run_once(T0)
    await runtime.scheduler.run_once(T0 + 60 * SECOND)
    assert sorted(await slots_of(runtime, schedule.id)) == [T0, T0 + 60 * SECOND]


async def test_cancel_previous_cancels_the_running_one_then_fires(runtime: Runtime) -> None:
    schedule = await make_schedule(runtime, overlap="cancel_previous")
    await runtime.scheduler.run_once(T0)
    await runtime.scheduler.run_once(T0 + 60 * SECOND)
    fired = await slots_of(runtime, schedule.id)
    assert fired == {T0: Status.CANCELLED, T0 + 60 * SECOND: Status.PENDING}


async def test_buffer_one_holds_one_slot_until_the_previous_run_ends(runtime: Runtime) -> None:
    schedule = await make_schedule(runtime, overlap="buffer_one")
    await runtime.scheduler.run_once(T0)
    await runtime.scheduler.run_once(T0 + 60 * SECOND)  # buffered
    await runtime.scheduler.run_once(T0 + 120 * SECOND)  # one is buffered already: skipped
    held = await current(runtime, schedule.id)
    assert (held.buffered_slot, held.skipped) == (T0 + 60 * SECOND, 1)
    assert list(await slots_of(runtime, schedule.id)) == [T0]
    first = (await ScheduleStore(runtime.repo.engine).recent_runs(schedule.id))[0]
    await runtime.control.cancel(first.id, by="test")  # the previous run ends
    await runtime.scheduler.run_once(T0 + 125 * SECOND)
    assert sorted(await slots_of(runtime, schedule.id)) == [T0, T0 + 60 * SECOND]
    assert (await current(runtime, schedule.id)).buffered_slot is None


async def test_catch_up_fires_the_newest_missed_slots_within_the_window(
    runtime: Runtime,
) -> None:
    # Down for 10 minutes: slots T0 .. T0+10min came due, the window keeps the last 3 min.
    schedule = await make_schedule(runtime, overlap="allow_all", catchup_window_ms=180_000)
    now = T0 + 10 * 60 * SECOND
    assert await runtime.scheduler.run_once(now) == 4  # T0+7, +8, +9, +10 min
    fired = sorted(await slots_of(runtime, schedule.id))
    assert fired == [T0 + m * 60 * SECOND for m in (7, 8, 9, 10)]
    after = await current(runtime, schedule.id)
    assert (after.skipped, after.next_slot) == (7, T0 + 11 * 60 * SECOND)


async def test_catch_up_fires_at_most_the_configured_number(runtime: Runtime) -> None:
    schedule = await make_schedule(
        runtime, overlap="allow_all", catchup_window_ms=3_600_000, every_ms=1000
    )
    runtime.scheduler.settings = runtime.settings.model_copy(update={"schedule_max_catchup": 3})
    await runtime.scheduler.run_once(T0 + 59 * SECOND)
    fired = sorted(await slots_of(runtime, schedule.id))
    assert fired == [T0 + 57 * SECOND, T0 + 58 * SECOND, T0 + 59 * SECOND]
    assert (await current(runtime, schedule.id)).skipped == 57


async def test_jitter_delays_a_fire_by_the_same_amount_in_every_process(
    runtime: Runtime,
) -> None:
    from app.engine.calendar import jitter_offset

    schedule = await make_schedule(runtime, jitter_ms=30_000)
    delay = jitter_offset(str(schedule.id), T0, 30_000)
    assert timedelta(0) <= delay < timedelta(seconds=30)
    assert await runtime.scheduler.run_once(T0 + delay - timedelta(milliseconds=1)) == 0
    assert await runtime.scheduler.run_once(T0 + delay) == 1


async def test_a_paused_schedule_does_not_fire(runtime: Runtime) -> None:
    schedule = await make_schedule(runtime, paused=True)
    assert await runtime.scheduler.run_once(T0 + SECOND) == 0
    assert await slots_of(runtime, schedule.id) == {}


async def test_a_start_that_fails_spends_the_slot_and_says_why(runtime: Runtime) -> None:
    schedule = await make_schedule(runtime, workflow_version="9")  # no such version
    assert await runtime.scheduler.run_once(T0 + SECOND) == 0
    after = await current(runtime, schedule.id)
    assert after.next_slot == T0 + 60 * SECOND and after.skipped == 1
    assert after.last_error is not None and after.last_error["code"] == "workflow_not_found"


async def test_a_slot_whose_execution_exists_is_counted_not_fired_again(
    runtime: Runtime,
) -> None:
    """A process that made the execution and died before moving the schedule on: the next
    pass finds the execution and only moves on."""
    schedule = await make_schedule(runtime)
    await runtime.scheduler.run_once(T0)
    async with runtime.repo.engine.begin() as conn:  # as if the advance never happened
        await conn.execute(
            update(schedules).where(schedules.c.id == schedule.id).values(next_slot=T0, fired=0)
        )
    await runtime.scheduler.run_once(T0 + SECOND)
    assert list(await slots_of(runtime, schedule.id)) == [T0]
    after = await current(runtime, schedule.id)
    assert (after.fired, after.next_slot) == (1, T0 + 60 * SECOND)


async def test_an_auto_start_left_unstarted_by_a_dead_process_is_started_once(
    runtime: Runtime,
) -> None:
    """The registering process died between the registration and the start: any process's
    scheduler starts the run, once, however many passes look."""
    definition = {**WORKFLOW, "name": "boot", "autoStart": True}
    await runtime.repo.create_workflow("boot", "1", definition)
    runtime.scheduler._swept_at = 0.0
    await runtime.scheduler.run_once()  # just registered: its registering request's to start
    assert await runtime.repo.get_by_idempotency_key("autostart:default:boot:1") is None
    later = datetime.now(UTC) + AUTO_START_GRACE + SECOND
    for _ in range(3):
        runtime.scheduler._swept_at = 0.0  # each pass sweeps (as after the sweep interval)
        await runtime.scheduler.run_once(later)
    started = await runtime.repo.get_by_idempotency_key("autostart:default:boot:1")
    assert started is not None and started.workflow_version == "1"
    store = ScheduleStore(runtime.repo.engine)
    assert await store.unstarted_auto_starts(datetime.now(UTC) - timedelta(hours=1)) == []
