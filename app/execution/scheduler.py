"""The scheduler loop: every process runs it; the database decides who fires a slot.

A slot's execution carries `(schedule_id, slot)`, unique in the database, so however many
processes see the slot due, one execution exists. The schedule moves on to its next slot by
a guarded update (on `revision`) only after that execution exists, so a process killed
between the two loses nothing: the next pass of any process finds the execution (or makes
it) and moves the schedule on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.config import Settings
from app.engine.calendar import Calendar, jitter_offset, plan_due
from app.engine.state import utcnow
from app.errors import TurnoutError
from app.execution.autostart import auto_start
from app.execution.manager import ExecutionManager, RunRequest
from app.execution.steering import ExecutionControl
from app.metrics import SCHEDULE_FIRES
from app.store.schedules import Advance, ScheduleRecord, ScheduleStore
from app.tasks import stop

log = logging.getLogger(__name__)

_BACKOFF_MAX_S = 10.0
# How often a fire re-reads whether its execution exists while an immediate run goes on.
_CREATED_POLL_S = 0.05
# How often a process looks for autoStart versions left unstarted, and how far back.
_AUTO_START_SWEEP_S = 10.0
_AUTO_START_WINDOW = timedelta(hours=1)
# A version registered more recently is its registering request's to start: a sweep that
# started it first made that request answer `created: false` for the run it asked for.
AUTO_START_GRACE = timedelta(seconds=5)


def calendar_of(record: ScheduleRecord) -> Calendar:
    return Calendar(cron=record.cron, timezone=record.timezone, every_ms=record.every_ms)


@dataclass(slots=True)
class _Pass:
    """What one pass over a schedule decided, folded into one guarded `Advance`."""

    fired: int = 0
    skipped: int = 0
    last_slot: datetime | None = None
    buffered: datetime | None = None
    buffer_changed: bool = False
    error: dict[str, object] | None = None


class Scheduler:
    """Fires the due slots of every schedule, every `schedule_tick_ms`."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: ScheduleStore,
        manager: ExecutionManager,
        control: ExecutionControl,
        owner: str,
    ) -> None:
        self.settings = settings
        self.store = store
        self.manager = manager
        self.control = control
        self.owner = owner
        self.interval_s = settings.schedule_tick_ms / 1000
        self._task: asyncio.Task[None] | None = None
        self._runs: set[asyncio.Task[object]] = set()
        self._swept_at = 0.0

    def start(self) -> None:
        if self.settings.schedule_tick_ms > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def close(self) -> None:
        """Stop firing; runs already started go on (the drain hands them over)."""
        await stop(self._task)
        self._task = None

    async def settle(self, timeout_s: float) -> None:
        """Wait for the fires' own tasks (an immediate run ends or is handed to the queue)."""
        if self._runs:
            await asyncio.wait(set(self._runs), timeout=timeout_s)

    async def _loop(self) -> None:
        backoff = self.interval_s
        # Processes started together should not all look at the same instant.
        await asyncio.sleep(random.uniform(0, self.interval_s))
        while True:
            try:
                await self.run_once()
                backoff = self.interval_s
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler pass failed", extra={"owner": self.owner})
                backoff = min(max(backoff * 2, self.interval_s), _BACKOFF_MAX_S)
            await asyncio.sleep(backoff)

    async def run_once(self, now: datetime | None = None) -> int:
        """One pass over the due schedules; returns how many slots this process fired."""
        now = now or utcnow()
        fired = 0
        for record in await self.store.due(now, self.settings.schedule_batch):
            fired += await self._pass(record, now)
        await self._sweep_auto_starts(now)
        return fired

    async def _sweep_auto_starts(self, now: datetime) -> None:
        """Start the autoStart versions whose registering process died before it started the
        run (their Idempotency-Key makes a race with it, or with another sweep, harmless)."""
        clock = asyncio.get_running_loop().time()
        if clock - self._swept_at < _AUTO_START_SWEEP_S:
            return
        self._swept_at = clock
        for namespace, name, version in await self.store.unstarted_auto_starts(
            now - _AUTO_START_WINDOW, now - AUTO_START_GRACE
        ):
            started = await auto_start(self.manager, namespace, name, version)
            log.info(
                "autoStart recovered",
                extra={"workflow": name, "version": version, "started": started},
            )

    async def _pass(self, record: ScheduleRecord, now: datetime) -> int:
        calendar = calendar_of(record)
        window = max(record.catchup_window_ms, self.settings.schedule_grace_ms)
        due = plan_due(
            calendar,
            record.next_slot,
            now,
            catchup_window_ms=window,
            max_catchup=self.settings.schedule_max_catchup,
            delay=lambda slot: jitter_offset(str(record.id), slot, record.jitter_ms),
        )
        state = _Pass(skipped=due.skipped, buffered=record.buffered_slot)
        if record.buffered_slot is not None and not await self.store.active_runs(record.id):
            await self._fire(record, record.buffered_slot, state)
            state.buffered, state.buffer_changed = None, True
        for slot in due.fire:
            await self._slot(record, slot, state)
        if due.next_slot == record.next_slot and not state.buffer_changed:
            return state.fired  # nothing came due (a jitter not yet passed)
        step = Advance(
            next_slot=due.next_slot,
            fired=state.fired,
            skipped=state.skipped,
            last_slot=state.last_slot,
            buffered_slot=state.buffered,
            set_buffer=state.buffer_changed,
            last_error=state.error,
            set_error=state.error is not None,
        )
        if await self.store.advance(record, step):
            SCHEDULE_FIRES.labels(outcome="fired").inc(state.fired)
            SCHEDULE_FIRES.labels(outcome="skipped").inc(state.skipped)
            if state.skipped:
                log.info(
                    "schedule slots skipped",
                    extra={"schedule_id": str(record.id), "skipped": state.skipped},
                )
        return state.fired

    async def _slot(self, record: ScheduleRecord, slot: datetime, state: _Pass) -> None:
        """Fire one slot, or skip or buffer it as the overlap policy says."""
        if await self.store.fired_slot(record.id, slot):  # another process got there first
            state.fired += 1
            state.last_slot = slot
            return
        policy = record.overlap
        if policy != "allow_all":
            active = await self.store.active_runs(record.id)
            if active and policy == "skip":
                state.skipped += 1
                return
            if active and policy == "buffer_one":
                if state.buffered is None:
                    state.buffered, state.buffer_changed = slot, True
                else:
                    state.skipped += 1
                return
            if active and policy == "cancel_previous":
                for execution_id in active:
                    with contextlib.suppress(TurnoutError):  # it ended meanwhile
                        await self.control.cancel(execution_id, by=f"schedule/{record.id}")
        await self._fire(record, slot, state)

    async def _fire(self, record: ScheduleRecord, slot: datetime, state: _Pass) -> None:
        """Start the slot's execution through the manager, and return once it exists."""
        request = RunRequest(
            workflow_id=record.workflow_name,
            version=record.workflow_version,
            input=record.input,
            mode=record.mode,  # type: ignore[arg-type]  # checked when the schedule was made
            priority=record.priority,
            tags=list(record.tags),
            metadata={"firedBy": self.owner},
            namespace=record.namespace,
            schedule_id=record.id,
            schedule_slot=slot,
        )
        task: asyncio.Task[object] = asyncio.create_task(self.manager.submit(request))
        self._runs.add(task)
        task.add_done_callback(self._finished)
        while not task.done():  # an immediate run goes on after its row is committed
            if await self.store.fired_slot(record.id, slot):
                break
            await asyncio.wait({task}, timeout=_CREATED_POLL_S)
        if task.done() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, TurnoutError):
                assert exc is not None
                raise exc  # the database is away: the slot is tried again on the next pass
            # The workflow was unregistered, its input no longer fits: the slot is spent.
            state.skipped += 1
            state.error = {"slot": slot.isoformat(), "code": exc.code, "message": exc.message}
            log.warning(
                "schedule fire failed",
                extra={"schedule_id": str(record.id), "slot": slot.isoformat(), "code": exc.code},
            )
            return
        state.fired += 1
        state.last_slot = slot

    def _finished(self, task: asyncio.Task[object]) -> None:
        self._runs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("schedule fire task ended with %r", task.exception())


def next_fires(record: ScheduleRecord, count: int, now: datetime | None = None) -> list[datetime]:
    """The next `count` slots, from the schedule's next one (nominal times, before jitter)."""
    calendar = calendar_of(record)
    first = max(record.next_slot, (now or utcnow()) - timedelta(milliseconds=1))
    if first == record.next_slot:
        return [first, *calendar.upcoming(first, count - 1)] if count > 0 else []
    return calendar.upcoming(first, count)
