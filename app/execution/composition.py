"""Child workflows and event waits, on the execution side: starting children through the
ExecutionManager, and waking parked runs when what they wait for has happened.

A wake-up is race-free without polling: the side that ends (a child, an event) commits,
then wakes its waiters; the side that parks commits its wait, then looks once more (see
`CompositionBus`). Whichever commits second sees the other's write."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from app.config import Settings
from app.engine.state import utcnow
from app.engine.status import TERMINAL
from app.errors import InvalidTransition, TurnoutError
from app.events.bus import EventBus
from app.events.stream import TERMINAL_EVENTS
from app.execution.queue import ExecutionQueue
from app.logs import no_log_context
from app.nodes.base import NodeContext, step_error
from app.nodes.compose import ChildView, EventCheck, Matcher
from app.nodes.wait_event import EVENT_WAIT
from app.nodes.workflow import CHILD_WAIT
from app.store.composition import CompositionStore, RunFacts
from app.store.records import EventRecord, ParentLink

if TYPE_CHECKING:
    from app.execution.manager import RunRequest, Submission
    from app.execution.steering import ExecutionControl

log = logging.getLogger(__name__)

# Events are compared by arrival time; a re-check starts this much before the last one, so an
# event stamped just before a check but committed just after it is still seen.
_RECHECK_SLACK = timedelta(seconds=5)


def _view(facts: RunFacts) -> ChildView:
    return ChildView(
        id=str(facts.id),
        status=facts.status,
        workflow=facts.workflow_name,
        version=facts.workflow_version,
        result=facts.result,
        error=facts.error,
    )


def _run_attempt(ctx: NodeContext) -> int:
    execution = ctx.scope.get("execution")
    attempt = execution.get("attempt") if isinstance(execution, dict) else None
    return attempt if isinstance(attempt, int) else 1


class Composer:
    """The `Composition` the `workflow` and `wait.event` nodes use."""

    def __init__(
        self,
        settings: Settings,
        store: CompositionStore,
        submit: Callable[[RunRequest], Awaitable[Submission]],
    ) -> None:
        self.settings = settings
        self.store = store
        self.submit = submit

    async def _facts(self, execution_id: str) -> RunFacts:
        facts = await self.store.facts(UUID(execution_id))
        if facts is None:
            raise step_error(f"execution {execution_id} is gone", code="not_found", retryable=False)
        return facts

    async def start_child(
        self, ctx: NodeContext, workflow: str, version: str | None, input_data: Any
    ) -> ChildView:
        from app.execution.manager import RunRequest  # the manager imports the strategies

        parent = await self._facts(ctx.execution_id)
        depth = parent.depth + 1
        limit = self.settings.max_child_depth
        if depth > limit:
            raise step_error(
                f"a child workflow at depth {depth} is deeper than TURNOUT_MAX_CHILD_DEPTH={limit}",
                code="child_depth_exceeded",
                retryable=False,
            )
        request = RunRequest(
            workflow_id=workflow,
            version=version,
            input=input_data,
            mode="queued",
            priority=parent.priority,
            # One child per attempt of the step (in this attempt of the run), whatever the
            # number of re-runs of it after crashes or hand-overs.
            idempotency_key=f"child:{parent.id}:{_run_attempt(ctx)}:{ctx.step_key}:{ctx.attempt}",
            namespace=parent.namespace,
            parent=ParentLink(parent.id, ctx.step_key, ctx.attempt, depth),
        )
        try:
            with no_log_context():
                submission = await self.submit(request)
        except TurnoutError as exc:  # unknown workflow, bad input: retrying cannot help
            raise step_error(
                f"child workflow '{workflow}': {exc.message}", code=exc.code, retryable=False
            ) from exc
        record = submission.started.record
        log.info(
            "child execution started",
            extra={"child_id": str(record.id), "depth": depth},
        )
        return ChildView(
            str(record.id),
            record.status,
            record.workflow_name,
            record.workflow_version,
            record.result,
            record.error,
        )

    async def child(self, child_id: str) -> ChildView:
        return _view(await self._facts(child_id))

    async def check_events(
        self, ctx: NodeContext, name: str, since: datetime, matcher: Matcher
    ) -> EventCheck:
        facts = await self._facts(ctx.execution_id)
        # Registered before looking, so an event stored after the look finds this waiter.
        await self.store.add_waiter(facts.id, ctx.step_key, facts.namespace, name)
        checked = ctx.state.get("eventsCheckedAt")
        start = since
        if isinstance(checked, str):
            start = max(since, datetime.fromisoformat(checked) - _RECHECK_SLACK)
        ctx.state["eventsCheckedAt"] = utcnow().isoformat()
        found = await self.store.events_since(
            facts.namespace,
            name,
            start,
        )
        for event in found:
            view = event.view()
            if matcher(view):
                return EventCheck(view, len(found), start)
        return EventCheck(None, len(found), start)

    async def stop_waiting(self, ctx: NodeContext) -> None:
        await self.store.remove_waiter(UUID(ctx.execution_id), ctx.step_key)


class EventRetention:
    """Events older than TURNOUT_RETENTION_DAYS go with the executions of that age (a batch
    per reconciler pass); without it they are kept."""

    def __init__(self, settings: Settings, store: CompositionStore) -> None:
        self.days = settings.retention_days
        self.store = store

    async def __call__(self, grace_ms: int, limit: int) -> int:
        if self.days is None:
            return 0
        return await self.store.delete_events_before(utcnow() - timedelta(days=self.days), limit)


SOLITARY_MAX = 10_000
_COMPOSES = object()


def may_compose(definition: Any) -> bool:
    """Whether a definition holds a `workflow` node anywhere (foreach templates included)."""
    if isinstance(definition, dict):
        return definition.get("type") == "workflow" or any(
            may_compose(v) for v in definition.values()
        )
    if isinstance(definition, list):
        return any(may_compose(v) for v in definition)
    return False


class CompositionBus:
    """The event bus, plus the wake-ups that follow what it carries: a run that ended wakes
    its parent and cancels its open children; a run that parked on a child or an event looks
    once more, in case what it waits for happened while it was parking."""

    def __init__(
        self,
        inner: EventBus,
        store: CompositionStore,
        queue: ExecutionQueue,
        control: Callable[[], ExecutionControl],
    ) -> None:
        self.inner = inner
        self.store = store
        self.queue = queue
        self.control = control
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_sweep: float | None = None
        # Runs of this process that have no parent and no `workflow` step: their end wakes
        # and cancels nobody, so it needs no read (oldest forgotten first past the bound).
        self._solitary: dict[UUID, None] = {}

    def subscribe(
        self, execution_id: UUID
    ) -> AbstractAsyncContextManager[asyncio.Queue[EventRecord]]:
        return self.inner.subscribe(execution_id)

    @property
    def subscriber_count(self) -> int:
        return int(getattr(self.inner, "subscriber_count", 0))

    def solitary(self, execution_id: UUID) -> None:
        """Say that this run has no parent and can start no child (ExecutionSession)."""
        self._solitary[execution_id] = None
        if len(self._solitary) > SOLITARY_MAX:
            del self._solitary[next(iter(self._solitary))]

    async def publish(self, events: Sequence[EventRecord]) -> None:
        await self.inner.publish(events)
        for event in events:
            if event.type in TERMINAL_EVENTS:
                if self._solitary.pop(event.execution_id, _COMPOSES) is None:
                    continue  # nobody to wake or cancel
                self._spawn(self._ended(event.execution_id))
            elif event.type == "execution.waiting":
                self._spawn(self._parked(event.execution_id, event.data.get("waitingFor")))

    def _spawn(self, work: Awaitable[None]) -> None:
        # Off the publisher's path (an immediate run's answer does not wait for it).
        task = asyncio.ensure_future(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guarded(work: Awaitable[None]) -> None:
        try:
            with no_log_context():
                await work
        except Exception:
            log.exception("composition wake-up failed; the waiting run stays parked")

    async def settle(self) -> None:
        """Wait for the wake-ups started so far (tests, and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _ended(self, execution_id: UUID) -> None:
        ended = await self.store.ended(execution_id)  # one read, whatever the run was
        if ended is None:
            return
        if ended.parent_id is not None:
            data = {
                "reason": "child_ended",
                "nodeId": ended.parent_step_key,
                "childExecutionId": str(execution_id),
                "childStatus": ended.status,
            }
            await self.wake(ended.parent_id, data)
        if not ended.open_children:
            return
        for child in await self.store.open_children(execution_id):
            # Temporal's default parent-close policy: the children of an ended run end too.
            with contextlib.suppress(InvalidTransition):
                await self.control().cancel(child, f"parent {execution_id}")

    async def _parked(self, execution_id: UUID, waiting_for: Any) -> None:
        if not isinstance(waiting_for, list):
            return
        for wait in waiting_for:
            if not isinstance(wait, dict):
                continue
            if wait.get("reason") == CHILD_WAIT and await self._child_over(wait):
                data = {
                    "reason": "child_ended",
                    "nodeId": wait.get("nodeId"),
                    "childExecutionId": wait.get("childExecutionId"),
                }
                await self.wake(execution_id, data)
                return
            if wait.get("reason") == EVENT_WAIT and await self._event_since(execution_id, wait):
                await self.wake(execution_id, {"reason": "event", "nodeId": wait.get("nodeId")})
                return

    async def _child_over(self, wait: dict[str, Any]) -> bool:
        try:
            child = await self.store.facts(UUID(str(wait.get("childExecutionId"))))
        except ValueError:
            return False
        return child is not None and child.status in TERMINAL

    async def _event_since(self, execution_id: UUID, wait: dict[str, Any]) -> bool:
        facts = await self.store.facts(execution_id)
        try:
            start = datetime.fromisoformat(str(wait.get("windowStart")))
        except ValueError:
            return False
        if facts is None:
            return False
        count = await self.store.count_events_since(facts.namespace, str(wait.get("event")), start)
        return count > int(wait.get("seen") or 0)

    async def sweep(self, grace_ms: int, limit: int) -> int:
        """Wake the runs whose wake-up was lost (a process died between its commit and the
        wake-up). The reconciler calls it on each pass; it looks once per grace period, as a
        lost wake-up is only told apart from a slow one after it (and not on the first pass,
        which a starting worker spends on its first jobs)."""
        now = time.monotonic()
        if self._next_sweep is None or now < self._next_sweep:
            if self._next_sweep is None:
                self._next_sweep = now + grace_ms / 1000
            return 0
        self._next_sweep = now + grace_ms / 1000
        woken = 0
        for execution_id, data in await self.store.missed_wakeups(grace_ms, limit):
            if await self.wake(execution_id, {**data, "recovered": True}):
                woken += 1
        if woken:
            log.warning("woke runs whose wake-up was lost", extra={"count": woken})
        return woken

    async def wake(self, execution_id: UUID, data: dict[str, Any]) -> bool:
        """Make a waiting run runnable and queue it; False when it was not waiting."""
        stored = await self.store.wake(execution_id, data)
        if stored is None:
            return False
        await self.inner.publish([stored])
        facts = await self.store.facts(execution_id)
        try:
            await self.queue.enqueue(execution_id, priority=facts.priority if facts else 0)
        except Exception:  # committed as pending: the reconciler enqueues it
            log.exception("enqueue failed", extra={"execution_id": str(execution_id)})
        log.info("execution woken", extra={"execution_id": str(execution_id), **data})
        return True

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.settle(), timeout=5)
        await self.inner.close()


__all__ = ["Composer", "CompositionBus", "EventRetention"]
