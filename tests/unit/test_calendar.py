"""When schedules fire (pure): cron in a time zone, intervals on the epoch, catch-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.engine.calendar import (
    Calendar,
    CalendarInvalid,
    check_cron,
    check_timezone,
    jitter_offset,
    plan_due,
)

S = timedelta(seconds=1)
T0 = datetime(2026, 3, 28, 23, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("calendar", "after", "expected"),
    [
        (Calendar(every_ms=1000), T0, T0 + S),
        (Calendar(every_ms=1000), T0 + timedelta(milliseconds=1), T0 + S),
        (Calendar(every_ms=60_000), T0 + 59 * S, T0 + 60 * S),
        (Calendar(every_ms=1500), datetime(1970, 1, 1, 0, 0, 2, tzinfo=UTC),
         datetime(1970, 1, 1, 0, 0, 3, tzinfo=UTC)),
        (Calendar(cron="*/5 * * * *"), T0 + 61 * S, T0 + 5 * 60 * S),
        # 09:00 in Paris is 08:00 UTC in winter, 07:00 UTC in summer (DST from 29 March).
        (Calendar(cron="0 9 * * *", timezone="Europe/Paris"), T0,
         datetime(2026, 3, 29, 7, 0, tzinfo=UTC)),
        (Calendar(cron="0 9 * * *", timezone="Europe/Paris"),
         datetime(2026, 3, 27, 12, 0, tzinfo=UTC), datetime(2026, 3, 28, 8, 0, tzinfo=UTC)),
        (Calendar(cron="0 0 1 * *", timezone="America/New_York"), T0,
         datetime(2026, 4, 1, 4, 0, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_next_slot(calendar: Calendar, after: datetime, expected: datetime) -> None:
    assert calendar.next_after(after) == expected


def test_upcoming_lists_the_next_slots_in_order() -> None:
    assert Calendar(every_ms=1000).upcoming(T0, 3) == [T0 + S, T0 + 2 * S, T0 + 3 * S]


@pytest.mark.parametrize("expression", ["", "bad", "61 * * * *", "* * * * * * *", "*/0 * * * *"])
def test_a_bad_cron_is_refused(expression: str) -> None:
    with pytest.raises(CalendarInvalid):
        check_cron(expression)


@pytest.mark.parametrize("name", ["Mars/Base", "", "../etc/passwd", "UTC+99"])
def test_an_unknown_time_zone_is_refused(name: str) -> None:
    with pytest.raises(CalendarInvalid):
        check_timezone(name)


@pytest.mark.parametrize(
    ("now", "window_s", "max_catchup", "fire_s", "skipped", "next_s"),
    [
        (-1, 60, 10, [], 0, 0),  # not due yet
        (0, 0, 10, [0], 0, 1),  # exactly due
        (4, 60, 10, [0, 1, 2, 3, 4], 0, 5),  # all missed slots within the window
        (10, 3, 10, [7, 8, 9, 10], 7, 11),  # older than the window: skipped
        (10, 60, 2, [9, 10], 9, 11),  # at most max_catchup, the newest
        (10, 0, 10, [10], 10, 11),
    ],
)
def test_plan_due(
    now: int, window_s: int, max_catchup: int, fire_s: list[int], skipped: int, next_s: int
) -> None:
    due = plan_due(
        Calendar(every_ms=1000),
        T0,
        T0 + now * S,
        catchup_window_ms=window_s * 1000,
        max_catchup=max_catchup,
    )
    assert due.fire == [T0 + s * S for s in fire_s]
    assert (due.skipped, due.next_slot) == (skipped, T0 + next_s * S)


def test_plan_due_far_behind_jumps_to_the_present() -> None:
    due = plan_due(
        Calendar(every_ms=1000), T0, T0 + 86_400 * S, catchup_window_ms=0, max_catchup=1, limit=50
    )
    assert due.fire == [] and due.skipped == 50
    assert due.next_slot == T0 + 86_401 * S


def test_jitter_is_the_same_for_a_slot_and_within_bounds() -> None:
    offsets = {jitter_offset("sched", T0 + n * S, 5000) for n in range(50)}
    assert all(timedelta(0) <= o < timedelta(seconds=5) for o in offsets)
    assert len(offsets) > 10  # spread out, not one constant
    assert jitter_offset("sched", T0, 5000) == jitter_offset("sched", T0, 5000)
    assert jitter_offset("sched", T0, 0) == timedelta(0)


def test_jitter_delays_the_fire_of_a_slot() -> None:
    delay = jitter_offset("s", T0, 10_000)
    early = plan_due(
        Calendar(every_ms=60_000), T0, T0 + delay - S, catchup_window_ms=60_000, max_catchup=1,
        delay=lambda slot: jitter_offset("s", slot, 10_000),
    )  # fmt: skip
    assert early.fire == [] and early.next_slot == T0
    on_time = plan_due(
        Calendar(every_ms=60_000), T0, T0 + delay, catchup_window_ms=60_000, max_catchup=1,
        delay=lambda slot: jitter_offset("s", slot, 10_000),
    )  # fmt: skip
    assert on_time.fire == [T0]
