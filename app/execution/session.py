"""Run one claimed execution to its next resting point: the path both modes share."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.config import Settings
from app.engine.runner import Runner
from app.engine.state import OutcomeKind, RunOutcome, StepState, step_order, utcnow
from app.engine.status import Status
from app.engine.stops import RunControl, StopKind
from app.errors import WorkflowInvalid
from app.events.bus import EventBus
from app.execution.composition import may_compose
from app.execution.recorder import CheckpointWriter, Recorder
from app.execution.secrets import SecretResolver
from app.execution.steering import stop_at_rest
from app.metrics import EXECUTIONS_SETTLED, RUN_SECONDS, Children
from app.nodes.registry import NodeRegistry
from app.observability import tracing, usage
from app.store.records import Checkpoint, EventRecord, ExecutionRecord
from app.store.repository import Repository
from app.workflows.cache import compile_cached
from app.workflows.graph import CompiledWorkflow

log = logging.getLogger(__name__)

_SETTLED = Children(EXECUTIONS_SETTLED)  # (status,)


@dataclass(slots=True)
class SessionResult:
    outcome: RunOutcome
    status: Status | None  # None when the lease was lost and someone else carries on
    promoted: bool = False
    # The execution as written, when it settled here: saves reading it back.
    record: ExecutionRecord | None = None


class ExecutionSession:
    """Compiles the snapshot, runs it with a recorder, and persists where it came to rest."""

    def __init__(
        self,
        *,
        settings: Settings,
        repo: Repository,
        bus: EventBus,
        runner: Runner,
        registry: NodeRegistry,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.bus = bus
        self.runner = runner
        self.registry = registry

    def compile(self, record: ExecutionRecord) -> CompiledWorkflow:
        return compile_cached(record.definition, self.registry, max_nodes=self.settings.max_nodes)

    async def run(
        self,
        record: ExecutionRecord,
        owner: str,
        control: RunControl,
        *,
        compiled: CompiledWorkflow | None = None,
        writer: CheckpointWriter | None = None,
    ) -> SessionResult:
        """`writer` takes the checkpoints instead of the repository (a run written once)."""
        with tracing.execution_span(
            execution_id=str(record.id),
            workflow=record.workflow_name,
            version=record.workflow_version,
            attempt=record.attempt,
            mode=record.execution_mode,
            traceparent=record.trace_context,
        ) as span:
            result = await self._run(record, owner, control, compiled, writer)
            status = str(result.status) if result.status is not None else None
            tracing.end_execution(span, status, result.outcome.error)
            return result

    async def _run(
        self,
        record: ExecutionRecord,
        owner: str,
        control: RunControl,
        compiled: CompiledWorkflow | None,
        writer: CheckpointWriter | None,
    ) -> SessionResult:
        workflow = compiled or self.compile(record)
        solitary = getattr(self.bus, "solitary", None)  # the composition bus (app/runtime.py)
        if solitary is not None and record.parent is None and not may_compose(record.definition):
            solitary(record.id)  # its end needs no look for a parent or children
        steps: dict[str, StepState] = {s.key: s for s in record.steps}
        recorder = Recorder(
            repo=writer or self.repo,
            bus=self.bus,
            execution_id=record.id,
            owner=owner,
            control=control,
            lease_ms=self.settings.lease_ms,
            heartbeat_ms=self.settings.heartbeat_ms,
            flush_interval_ms=self.settings.checkpoint_interval_ms,
            progress_done=record.progress_done,
            progress_total=record.progress_total,
        )
        secrets = await self._secrets(record)
        started = time.monotonic()
        timer = self._arm_timeout(record, control)
        recorder.start(steps)
        try:
            outcome = await self.runner.run(
                workflow,
                record.input,
                execution_id=str(record.id),
                observer=recorder,
                control=control,
                steps=steps,
                attempt=record.attempt,
                secrets=secrets,
                namespace=record.namespace,
            )
        finally:
            if timer is not None:
                timer.cancel()
            await recorder.stop()
        if recorder.lost:
            if recorder.write_error is not None:  # not a lost lease: retrying cannot help
                return await self.fail(record, owner, recorder.write_error)
            return SessionResult(outcome, None)
        elapsed = record.elapsed_ms + int((time.monotonic() - started) * 1000)
        return await self._settle(record, recorder, outcome, control, elapsed)

    async def fail(
        self, record: ExecutionRecord, owner: str, error: dict[str, Any]
    ) -> SessionResult:
        """End a run that cannot go on (`write_failed`, `recovery_exhausted`) as `failed`.

        Written without its steps, so what could not be stored stays out; if even this write
        fails, the lease expires and recovery (bounded) tries again."""
        now = utcnow()
        values: dict[str, Any] = {
            "error": error,
            "control_action": None,
            "completed_at": now,
            "recoveries": 0,
        }
        data = {"attempt": record.attempt, "error": error}
        cp = Checkpoint(
            events=[("execution.failed", data)],
            status=Status.FAILED,
            values=values,
            release_lease=True,
        )
        try:
            stored, _ = await self.repo.checkpoint(record.id, owner, cp, self.settings.lease_ms)
        except Exception:
            log.exception("could not fail the execution", extra={"execution_id": str(record.id)})
            return SessionResult(RunOutcome(OutcomeKind.FAILED, error=error), None)
        await self.bus.publish(stored)
        _SETTLED(str(Status.FAILED)).inc()
        return SessionResult(RunOutcome(OutcomeKind.FAILED, error=error), Status.FAILED)

    async def _secrets(self, record: ExecutionRecord) -> dict[str, str]:
        """Read at run time, never stored; a secret removed since submission reads as missing
        (the step that needs it fails with an expression error)."""
        resolver = SecretResolver(self.repo.engine, self.settings.secret_key)
        try:
            return await resolver.resolve(record.namespace, record.definition)
        except WorkflowInvalid:
            return {}

    @staticmethod
    def _arm_timeout(record: ExecutionRecord, control: RunControl) -> asyncio.TimerHandle | None:
        if record.timeout_ms is None:
            return None
        # Time spent paused or waiting does not count: only the time actually run.
        remaining = max(0, record.timeout_ms - record.elapsed_ms) / 1000
        reason = f"the execution ran longer than its timeout ({record.timeout_ms} ms)"
        return asyncio.get_running_loop().call_later(
            remaining, control.request, StopKind.TIMEOUT, reason
        )

    async def _settle(
        self,
        record: ExecutionRecord,
        recorder: Recorder,
        outcome: RunOutcome,
        control: RunControl,
        elapsed_ms: int,
    ) -> SessionResult:
        steps = outcome.steps
        now = utcnow()
        values: dict[str, Any] = {
            "elapsed_ms": elapsed_ms,
            "updated_at": now,
            "recoveries": 0,  # the run came to rest: a later takeover starts a new count
        }
        values.update(usage.settled_columns(list(steps.values())))
        data: dict[str, Any] = {"attempt": record.attempt}
        status, event = _RESTING[outcome.kind]
        if status not in _KEEPS_REQUEST:
            values["control_action"] = None  # applied (or moot: the run is over)
        if outcome.kind == OutcomeKind.COMPLETED:
            values["result"] = outcome.result
            values["error"] = None
        elif outcome.kind in (OutcomeKind.FAILED, OutcomeKind.CANCELLED):
            values["error"] = outcome.error
            data["error"] = outcome.error
        elif outcome.kind == OutcomeKind.WAITING:
            values["wake_at"] = outcome.wake_at
            data["waitingFor"] = outcome.waiting_for
            data["wakeAt"] = outcome.wake_at.isoformat() if outcome.wake_at else None
        elif outcome.kind in (OutcomeKind.PAUSED, OutcomeKind.INTERRUPTED):
            data["interruptedSteps"] = outcome.interrupted_steps
            data["reason"] = control.reason
        if control.by is not None and outcome.kind in (OutcomeKind.PAUSED, OutcomeKind.CANCELLED):
            data["requestedBy"] = control.by  # X-Actor of the pause or cancel
        if status == Status.PENDING:
            values["execution_mode"] = "queued"
        if status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED):
            data["durationMs"] = elapsed_ms
            values["completed_at"] = now
        stored = await recorder.flush(
            status=status, values=values, events=[(event, data)], release=True
        )
        if recorder.lost and not stored:
            if recorder.write_error is not None:
                return await self.fail(record, recorder.owner, recorder.write_error)
            return SessionResult(outcome, None)
        RUN_SECONDS.observe((elapsed_ms - record.elapsed_ms) / 1000)
        late = await self._apply_late_request(record, recorder.requested, control, status)
        if late is not None:
            return SessionResult(outcome, Status(late.status), record=late)
        _SETTLED(str(status)).inc()
        final = settled_record(record, status, values, stored, recorder.progress_done, steps)
        return SessionResult(outcome, status, promoted=status == Status.PENDING, record=final)

    async def _apply_late_request(
        self, record: ExecutionRecord, action: str | None, control: RunControl, status: Status
    ) -> ExecutionRecord | None:
        """A cancel or pause that arrived after the run decided to park or hand over: the
        row kept it, so it is applied now rather than left unheard. None if the control
        path applied it first (or the row moved on), or nothing was asked."""
        if action is None or status not in _KEEPS_REQUEST:
            return None
        if not await stop_at_rest(self.repo, self.bus, record.id, action, control.by, status):
            return None
        stopped = await self.repo.get_execution(record.id)
        _SETTLED(stopped.status).inc()
        return stopped


def settled_record(
    record: ExecutionRecord,
    status: Status,
    values: dict[str, Any],
    stored: list[EventRecord],
    progress_done: int,
    steps: Mapping[str, StepState],
) -> ExecutionRecord:
    """The row as the last checkpoint wrote it, built in memory (no read-back)."""
    columns = {k: v for k, v in values.items() if k in _RECORD_FIELDS}
    final = dataclasses.replace(
        record,
        **columns,
        status=str(status),
        progress_done=progress_done,
        last_seq=stored[-1].seq if stored else record.last_seq,
        lease_owner=None,
        lease_expires_at=None,
    )
    final.steps = sorted(steps.values(), key=step_order)
    return final


_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(ExecutionRecord))


# Resting statuses that leave a control request on the row: one asked while the run was
# parking (or handing over) is applied after the write, never cleared unheard.
_KEEPS_REQUEST = frozenset({Status.WAITING, Status.PENDING})

_RESTING: dict[OutcomeKind, tuple[Status, str]] = {
    OutcomeKind.COMPLETED: (Status.COMPLETED, "execution.completed"),
    OutcomeKind.FAILED: (Status.FAILED, "execution.failed"),
    OutcomeKind.CANCELLED: (Status.CANCELLED, "execution.cancelled"),
    OutcomeKind.PAUSED: (Status.PAUSED, "execution.paused"),
    OutcomeKind.WAITING: (Status.WAITING, "execution.waiting"),
    # Handed to the queue: promotion of an immediate run, or a shutting-down process.
    OutcomeKind.INTERRUPTED: (Status.PENDING, "execution.promoted"),
}
