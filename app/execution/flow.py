"""Flow control around the claim: acts on the gate's answer (app/store/flow.py), and wakes
the runs waiting for a slot when one frees."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from app.engine.status import Status
from app.events.bus import EventBus
from app.execution.queue import ExecutionQueue
from app.execution.steering import ExecutionControl
from app.metrics import FLOW_REFUSALS
from app.store.audit import AuditEntry, AuditStore
from app.store.flow import Refusal
from app.store.records import EventRecord, ExecutionRecord
from app.store.repository import Repository

log = logging.getLogger(__name__)

SUPERSEDED_BY = "concurrency:cancel_in_progress"


@dataclass(kw_only=True, eq=False)
class FlowGate:
    """The gated claim of executions with `concurrency`, `rateLimit` or a namespace limit."""

    repo: Repository
    bus: EventBus
    queue: ExecutionQueue
    control: ExecutionControl
    _cancels: set[asyncio.Task[Any]] = field(default_factory=set, init=False)

    async def claim(
        self, execution_id: UUID, owner: str, lease_ms: int, event: tuple[str, dict[str, Any]]
    ) -> tuple[ExecutionRecord, EventRecord] | None:
        """Claim through the gate; a refused run is left pending (or cancelled, for
        cancel_newest) and None is returned."""
        gated = await self.repo.claim_gated(execution_id, owner, lease_ms, event)
        for older in gated.supersede:
            self._cancel_later(older, execution_id)
        if gated.refusal is not None:
            await self._refused(execution_id, gated.refusal)
        return gated.claimed

    async def _refused(self, execution_id: UUID, refusal: Refusal) -> None:
        code = str(refusal.reason["code"])
        FLOW_REFUSALS.labels(reason=code).inc()
        log.info(
            "execution held back by flow control",
            extra={"execution_id": str(execution_id), "reason": refusal.reason},
        )
        if refusal.cancel_self:
            await self._cancel_newest(execution_id, refusal.reason)
        elif refusal.retry_at is not None:  # rate limited: come back when a token is due
            await self.queue.enqueue(execution_id, defer_until=refusal.retry_at)
        # A run refused a slot is enqueued again when one frees (`released`), and by the
        # reconciler's pass over old pending rows should that wake-up be lost.

    async def _cancel_newest(self, execution_id: UUID, reason: dict[str, Any]) -> None:
        error = {
            "code": "concurrency_limit",
            "message": f"cancelled: {reason['running']} executions of concurrency key "
            f"'{reason['key']}' were running (limit {reason['limit']}, strategy cancel_newest)",
        }
        stored = await self.repo.transition(
            execution_id,
            Status.CANCELLED,
            (
                "execution.cancelled",
                {"from": "pending", "error": error, "requestedBy": "concurrency"},
            ),
            values={"error": error, "control_action": None, "lease_owner": None, "wake_at": None},
            sources=[Status.PENDING],
            end_open_steps=True,
        )
        if isinstance(stored, EventRecord):
            await self.bus.publish([stored])

    def _cancel_later(self, older: UUID, newer: UUID) -> None:
        """Cancel a superseded run without holding up the claim (a running one takes up to
        the cancel grace to stop; its slot is woken for when it does)."""

        async def cancel() -> None:
            try:
                answer = await self.control.cancel(older, SUPERSEDED_BY)
                if answer.changed:  # a control action taken by the service: audited as one
                    entry = AuditEntry(
                        actor=SUPERSEDED_BY,
                        namespace=answer.record.namespace,
                        action="execution.cancel",
                        target=f"execution/{older}",
                        details={"supersededBy": str(newer), "status": answer.record.status},
                    )
                    await AuditStore(self.repo.engine).append(entry)
            except Exception:
                log.exception(
                    "could not cancel a superseded execution",
                    extra={"execution_id": str(older), "superseded_by": str(newer)},
                )

        task = asyncio.create_task(cancel())
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)

    async def released(self, record: ExecutionRecord) -> None:
        """A run that held a slot came to rest: enqueue the next runs waiting for its key."""
        if record.flow is None or not (
            "concurrency" in record.flow or record.flow.get("namespaceLimit")
        ):
            return
        try:
            for execution_id, priority in await self.repo.slot_waiters(record):
                await self.queue.enqueue(execution_id, priority=priority)
        except Exception:  # the reconciler enqueues them later
            log.exception("could not wake the runs waiting for a slot")

    async def close(self) -> None:
        for task in list(self._cancels):
            task.cancel()
        await asyncio.gather(*self._cancels, return_exceptions=True)
