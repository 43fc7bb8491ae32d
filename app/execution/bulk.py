"""Many runs in one request: each validated on its own, all created in one statement.

A bulk submission queues its runs (`auto` and `queued`; `immediate` cannot be answered per
run in one response). The rows are committed together, then every job is enqueued in one
round trip with the first events (`strategies.hand_over`), as for a single queued run."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from app.engine.status import Status
from app.errors import IdempotencyConflict, RequestInvalid, TurnoutError
from app.events.bus import EventBus
from app.execution.complexity import Complexity
from app.execution.manager import ExecutionManager, Memo, RunRequest
from app.execution.queue import ExecutionQueue
from app.execution.strategies import created_event, first_events, hand_over
from app.metrics import EXECUTIONS_SUBMITTED
from app.store.records import EventRecord, ExecutionRecord, NewExecution

log = logging.getLogger(__name__)

# Runs one request may carry.
MAX_BULK_RUNS = 1000


@dataclass(slots=True)
class BulkOutcome:
    """One run's answer: its execution (new, or the one its idempotency key names), or why
    it was refused."""

    record: ExecutionRecord | None = None
    complexity: Complexity | None = None
    created: bool = False
    error: TurnoutError | None = None


@dataclass(slots=True)
class _Pending:
    index: int
    new: NewExecution
    complexity: Complexity


class BulkSubmitter:
    """Submits the runs of one bulk request; one outcome per run, in order."""

    def __init__(self, manager: ExecutionManager, queue: ExecutionQueue, bus: EventBus) -> None:
        self.manager = manager
        self.repo = manager.repo
        self.queue = queue
        self.bus = bus

    async def submit(self, requests: Sequence[RunRequest | TurnoutError]) -> list[BulkOutcome]:
        outcomes = [BulkOutcome() for _ in requests]
        keys = [r.idempotency_key for r in requests if isinstance(r, RunRequest)]
        known = await self.repo.get_by_idempotency_keys([k for k in keys if k])
        memo = Memo(share=True)
        pending: list[_Pending] = []
        for index, request in enumerate(requests):
            if isinstance(request, TurnoutError):
                outcomes[index].error = request
                continue
            try:
                found = await self._prepare(index, request, known, memo, outcomes[index])
            except TurnoutError as exc:
                outcomes[index].error = exc
                continue
            if found is not None:
                pending.append(found)
        if pending:
            await self._create(pending, requests, outcomes)
        return outcomes

    async def _prepare(
        self,
        index: int,
        request: RunRequest,
        known: dict[str, ExecutionRecord],
        memo: Memo,
        outcome: BulkOutcome,
    ) -> _Pending | None:
        fingerprint = request.fingerprint() if request.idempotency_key else None
        existing = known.get(request.idempotency_key) if request.idempotency_key else None
        if existing is not None:  # a replay: the execution the key names, nothing new
            _check_replay(existing, request, fingerprint)
            outcome.record = existing
            outcome.complexity = Complexity.from_dict(existing.complexity or {})
            return None
        if request.mode == "immediate":
            raise RequestInvalid(
                "a bulk submission queues its runs: send an immediate run to POST /workflow/run",
                [
                    {
                        "loc": ["mode"],
                        "code": "bulk_queued",
                        "message": "mode 'immediate' is not "
                        "available in a bulk submission (use 'auto' or 'queued')",
                    }
                ],
            )
        new, _, complexity, _ = await self.manager.prepare(request, fingerprint, memo)
        new.status = Status.PENDING
        new.execution_mode = "queued"
        return _Pending(index, new, complexity)

    async def _create(
        self,
        pending: list[_Pending],
        requests: Sequence[RunRequest | TurnoutError],
        outcomes: list[BulkOutcome],
    ) -> None:
        items = [(p.new, [created_event(p.new)]) for p in pending]
        results = await self.repo.create_executions(items)  # one statement, one commit
        fresh: list[ExecutionRecord] = []
        published: list[EventRecord] = []
        for p, (_, events), result in zip(pending, items, results, strict=True):
            outcome = outcomes[p.index]
            if isinstance(result, Exception):
                raise result  # not an idempotency conflict: the statement itself failed
            record, created = result
            request = requests[p.index]
            assert isinstance(request, RunRequest)
            if not created:  # the key was taken by another run of this request, or a race
                try:
                    _check_replay(record, request, p.new.request_hash)
                except TurnoutError as exc:
                    outcome.error = exc
                    continue
            outcome.record, outcome.complexity, outcome.created = record, p.complexity, created
            if created:
                fresh.append(record)
                published.extend(first_events(record, list(events)))
        await hand_over(self.queue, self.bus, fresh, published)
        if fresh:
            EXECUTIONS_SUBMITTED.labels(mode="queued").inc(len(fresh))
        log.info(
            "bulk submission",
            extra={
                "runs": len(requests),
                "runs_created": len(fresh),
                "runs_refused": sum(1 for o in outcomes if o.error is not None),
            },
        )


def _check_replay(existing: ExecutionRecord, request: RunRequest, fingerprint: str | None) -> None:
    # Another namespace's key is a conflict, not its execution (nothing leaks).
    if existing.namespace != request.namespace:
        raise IdempotencyConflict("this Idempotency-Key is already in use")
    if existing.request_hash != fingerprint:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used with a different request body"
        )
