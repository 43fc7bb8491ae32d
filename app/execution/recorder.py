"""The runner's observer: batches step changes and events into lease-fenced checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from app.engine.state import StepState, utcnow
from app.engine.status import STEP_DONE
from app.engine.stops import ACTIONS, RunControl, StopKind
from app.errors import LeaseLost
from app.events.bus import EventBus
from app.store.database import is_unavailable
from app.store.records import Checkpoint, EventRecord

log = logging.getLogger(__name__)


class CheckpointWriter(Protocol):
    """Where a recorder writes: the repository, or a run's deferred creation
    (app/execution/deferred.py)."""

    async def checkpoint(
        self, execution_id: UUID, owner: str, cp: Checkpoint, lease_ms: int
    ) -> tuple[list[EventRecord], str | None]: ...


def write_failed(exc: Exception) -> dict[str, Any]:
    """The execution's error when its progress could not be stored (not a lost lease)."""
    reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return {
        "code": "write_failed",
        "message": f"the execution's progress could not be stored: {type(exc).__name__}"
        + (f": {reason}" if reason else ""),
    }


class Recorder:
    """Pure steps are written in batches; external steps and parked steps are written at once.

    Re-running a pure step after a crash is unobservable, so batching it loses nothing; a step
    that touched the outside world is on disk before the run moves on."""

    def __init__(
        self,
        *,
        repo: CheckpointWriter,
        bus: EventBus,
        execution_id: UUID,
        owner: str,
        control: RunControl,
        lease_ms: int,
        heartbeat_ms: int,
        flush_interval_ms: int,
        progress_done: int,
        progress_total: int = 0,
    ) -> None:
        self.repo = repo
        self.bus = bus
        self.execution_id = execution_id
        self.owner = owner
        self.control = control
        self.lease_ms = lease_ms
        self.heartbeat_s = heartbeat_ms / 1000
        self.flush_interval_s = flush_interval_ms / 1000
        self.progress_done = progress_done
        self.progress_total = progress_total
        self.lost = False
        self.write_error: dict[str, Any] | None = None
        # The control action the row held after the latest write (None when none was asked).
        self.requested: str | None = None
        self._dirty: dict[str, StepState] = {}
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._event_times: list[datetime] = []
        self._counted: set[str] = set()
        self._lock = asyncio.Lock()
        self._last_write = time.monotonic()
        self._dirty_since: float | None = None
        self._keeper: asyncio.Task[None] | None = None

    def start(self, steps: Mapping[str, StepState]) -> None:
        self._counted = {
            k for k, s in steps.items() if s.item_index is None and s.status in STEP_DONE
        }
        self._keeper = asyncio.create_task(self._keep())

    async def stop(self) -> None:
        if self._keeper is not None:
            # Never cancel a flush in the middle of its write: the batch it took would be lost.
            async with self._lock:
                self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper

    async def step_changed(
        self, step: StepState, event: str | None, data: dict[str, Any], *, durable: bool
    ) -> None:
        self._dirty[step.key] = step
        if step.item_index is None and step.status in STEP_DONE and step.key not in self._counted:
            self._counted.add(step.key)
            self.progress_done += 1
        if event is not None:
            payload = {"nodeId": step.node_id, "stepKey": step.key, **data}
            if step.item_index is not None:
                payload["itemIndex"] = step.item_index
            payload["progress"] = {"done": self.progress_done, "total": self.progress_total}
            self._events.append((event, payload))
            self._event_times.append(utcnow())
        if self._dirty_since is None:
            self._dirty_since = time.monotonic()
        if durable:
            await self.flush()

    def step_revised(self, step: StepState) -> None:
        if step.key in self._dirty:  # not written yet: the batch takes the newer value
            self._dirty[step.key] = step

    async def flush(
        self,
        *,
        status: str | None = None,
        values: dict[str, Any] | None = None,
        events: list[tuple[str, dict[str, Any]]] | None = None,
        release: bool = False,
    ) -> list[EventRecord]:
        """Write what is buffered (plus an optional status change) in one transaction."""
        if self.lost:
            return []
        async with self._lock:
            # Step values are frozen: the batch needs no copy while the write is in flight.
            cp = Checkpoint(
                steps=list(self._dirty.values()),
                events=self._events + (events or []),
                event_times=self._event_times,
                status=status,
                values={"progress_done": self.progress_done, **(values or {})},
                release_lease=release,
            )
            self._dirty = {}
            self._events = []
            self._event_times = []
            self._dirty_since = None
            try:
                stored, action = await self.repo.checkpoint(
                    self.execution_id, self.owner, cp, self.lease_ms
                )
            except LeaseLost:
                log.warning("lease lost", extra={"execution_id": str(self.execution_id)})
                self._give_up()
                return []
            except Exception as exc:
                log.exception("checkpoint failed", extra={"execution_id": str(self.execution_id)})
                if not is_unavailable(exc):  # an outage passes; a refused write never does
                    self.write_error = write_failed(exc)
                self._give_up()
                return []
            self._last_write = time.monotonic()
            self.requested = action if action in ACTIONS else None
        if action in ACTIONS:
            self.control.request(ACTIONS[action], f"{action} requested")
        if stored:
            await self.bus.publish(stored)
        return stored

    def _give_up(self) -> None:
        # Another owner has (or will get) this execution: stop without writing anything more.
        self.lost = True
        self.control.request(StopKind.INTERRUPT, "lease lost")

    async def _keep(self) -> None:
        """Flush buffered progress every interval; renew the lease when idle."""
        tick = min(self.flush_interval_s, self.heartbeat_s)
        while not self.lost:
            await asyncio.sleep(tick)
            now = time.monotonic()
            due_flush = self._dirty_since is not None and now - self._dirty_since >= tick
            if due_flush or now - self._last_write >= self.heartbeat_s:
                await self.flush()
