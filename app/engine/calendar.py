"""When a schedule fires (pure): cron in a time zone or a fixed interval, the catch-up rule
and the jitter. Slots are the nominal times; every process computes the same ones."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CalendarInvalid(ValueError):
    """A cron expression or a time zone that cannot be used."""


def check_cron(expression: str) -> None:
    try:
        CronSim(expression, datetime.now(UTC))
    except CronSimError as exc:
        raise CalendarInvalid(f"invalid cron expression {expression!r}: {exc}") from None


def check_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarInvalid(f"unknown time zone {name!r}") from None


@dataclass(frozen=True, slots=True)
class Calendar:
    """Exactly one of `cron` (read in `timezone`) or `every_ms` (slots at multiples of it
    since the Unix epoch, so a redeploy or a second process finds the same slots)."""

    cron: str | None = None
    timezone: str = "UTC"
    every_ms: int | None = None

    def next_after(self, after: datetime) -> datetime:
        """The first slot strictly after `after` (UTC)."""
        if self.every_ms is not None:
            elapsed_ms = (after - EPOCH) // timedelta(milliseconds=1)
            k = elapsed_ms // self.every_ms + 1
            return EPOCH + timedelta(milliseconds=k * self.every_ms)
        assert self.cron is not None
        local = after.astimezone(check_timezone(self.timezone))
        found: datetime = next(iter(CronSim(self.cron, local)))
        return found.astimezone(UTC)

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        out: list[datetime] = []
        at = after
        for _ in range(count):
            at = self.next_after(at)
            out.append(at)
        return out


def jitter_offset(schedule_id: str, slot: datetime, jitter_ms: int) -> timedelta:
    """The same delay in [0, jitter_ms) for a slot in every process (a hash, not random)."""
    if jitter_ms <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{schedule_id}|{slot.isoformat()}".encode()).digest()
    return timedelta(milliseconds=int.from_bytes(digest[:8], "big") % jitter_ms)


@dataclass(frozen=True, slots=True)
class Due:
    """What to do with the slots that came due: fire these (oldest first), skip that many
    (older than the catch-up window or past the cap), and wait for `next_slot`."""

    fire: list[datetime]
    skipped: int
    next_slot: datetime


def plan_due(
    calendar: Calendar,
    next_slot: datetime,
    now: datetime,
    *,
    catchup_window_ms: int,
    max_catchup: int,
    delay: Callable[[datetime], timedelta] = lambda _slot: timedelta(0),
    limit: int = 10_000,
) -> Due:
    """The slots from `next_slot` whose time (plus its `delay`, the jitter) has come: the
    newest `max_catchup` within the window fire, the rest are skipped (an interval of 1 s
    down for a day is not 86 400 runs)."""
    due: list[datetime] = []
    at = next_slot
    skipped = 0
    oldest = now - timedelta(milliseconds=catchup_window_ms)
    while at + delay(at) <= now and len(due) + skipped < limit:
        if at + delay(at) < oldest:
            skipped += 1
        else:
            due.append(at)
        at = calendar.next_after(at)
    if len(due) > max_catchup:
        skipped += len(due) - max_catchup
        due = due[len(due) - max_catchup :]
    if len(due) + skipped >= limit and at <= now:  # too far behind: jump to the present
        at = calendar.next_after(now)
    return Due(due, skipped, at)
