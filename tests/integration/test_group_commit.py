"""Group commit on both databases: concurrent creations, claims and checkpoints share
statements, and each caller still gets its own answer (its own error included)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from app.engine.state import StepState, utcnow
from app.engine.status import Status, StepStatus
from app.errors import LeaseLost
from app.store.records import Checkpoint, NewExecution
from app.store.repository import Repository
from tests.support.executions import insert_pending

ONE_STEP = {"nodes": [{"id": "a", "type": "noop"}]}
STARTED: tuple[str, dict[str, Any]] = ("execution.started", {})
CREATED: list[tuple[str, dict[str, Any]]] = [("execution.created", {})]


def new_execution(**overrides: Any) -> NewExecution:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "workflow_name": "test",
        "workflow_id": None,
        "workflow_version": None,
        "status": Status.PENDING,
        "execution_mode": "queued",
        "requested_mode": "queued",
        "input": {},
        "definition": ONE_STEP,
        "complexity": None,
        "progress_total": 1,
        **overrides,
    }
    return NewExecution(**values)


def count_batches(repo: Repository, name: str) -> list[int]:
    """Record the size of every statement the named group commit writes (the real write
    still runs)."""
    group = getattr(repo, name)
    sizes: list[int] = []
    write: Callable[[Sequence[Any]], Awaitable[Any]] = group._write

    async def counted(items: Sequence[Any]) -> Any:
        sizes.append(len(items))
        return await write(items)

    group._write = counted
    return sizes


async def event_types(repo: Repository, execution_id: uuid.UUID) -> list[str]:
    return [e.type for e in await repo.events_after(execution_id, 0)]


async def test_concurrent_creations_share_statements(repo: Repository) -> None:
    sizes = count_batches(repo, "_creations")
    news = [new_execution() for _ in range(60)]
    results = await asyncio.gather(*(repo.create_execution(n, CREATED) for n in news))
    assert [(r.id, created) for r, created in results] == [(n.id, True) for n in news]
    assert sum(sizes) == 60 and len(sizes) < 60  # some shared a statement
    for n in news[:5]:
        assert (await repo.get_execution(n.id)).status == Status.PENDING
        assert await event_types(repo, n.id) == ["execution.created"]


async def test_an_idempotency_conflict_goes_to_its_caller_only(repo: Repository) -> None:
    first = new_execution(idempotency_key="k-1", request_hash="h")
    twin = new_execution(idempotency_key="k-1", request_hash="other")
    others = [new_execution() for _ in range(10)]
    results = await repo.create_executions(
        [(first, CREATED), (twin, CREATED)] + [(n, CREATED) for n in others]
    )
    (a, a_created), (b, b_created) = results[0], results[1]  # type: ignore[misc]
    assert a_created and a.id == first.id
    assert not b_created and b.id == first.id and b.request_hash == "h"
    assert all(r[1] and r[0].id == n.id for r, n in zip(results[2:], others, strict=True))  # type: ignore[index]
    with pytest.raises(Exception, match="no execution"):
        await repo.get_execution(twin.id)
    assert await event_types(repo, first.id) == ["execution.created"]


async def test_a_refused_row_fails_only_its_own_caller(repo: Repository) -> None:
    good = [new_execution() for _ in range(8)]
    bad = new_execution(status="bogus")  # the status check constraint refuses it
    outcomes = await asyncio.gather(
        *(repo.create_execution(n, CREATED) for n in [*good[:4], bad, *good[4:]]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[4], IntegrityError)
    created = [o for i, o in enumerate(outcomes) if i != 4]
    assert all(isinstance(o, tuple) and o[1] for o in created)
    for n in good:
        assert (await repo.get_execution(n.id, steps=False)).status == Status.PENDING


async def test_a_batched_claim_takes_each_claimable_execution_once(repo: Repository) -> None:
    ids = [await insert_pending(repo, ONE_STEP) for _ in range(12)]
    sizes = count_batches(repo, "_claims")
    # Two workers claim the same executions at once, in opposite orders, each id twice.
    claims = [repo.claim(i, "w1", 60_000, STARTED) for i in ids + ids]
    claims += [repo.claim(i, "w2", 60_000, STARTED) for i in reversed(ids)]
    outcomes = await asyncio.gather(*claims)
    won = [o for o in outcomes if o is not None]
    assert sorted(str(r.id) for r, _ in won) == sorted(str(i) for i in ids)
    assert all(e.seq == 2 and r.status == Status.RUNNING for r, e in won)
    assert max(sizes) > 1
    for i in ids:
        assert await event_types(repo, i) == ["execution.created", "execution.started"]


def done(node: str) -> StepState:
    now = utcnow()
    return StepState(
        key=node,
        node_id=node,
        status=StepStatus.COMPLETED,
        attempt=1,
        started_at=now,
        completed_at=now,
        output={"node": node},
    )


async def test_batched_checkpoints_keep_fences_and_their_own_values(repo: Repository) -> None:
    ids = [await insert_pending(repo, ONE_STEP) for _ in range(10)]
    for i in ids:
        assert await repo.claim(i, "w1", 60_000, STARTED) is not None
    sizes = count_batches(repo, "_checkpoints")

    def final(n: int) -> Checkpoint:
        if n % 2:
            return Checkpoint(
                steps=[done("a")],
                events=[("execution.completed", {"n": n})],
                status=Status.COMPLETED,
                values={"result": {"n": n}},
            )
        return Checkpoint(steps=[done("a")], events=[("step.completed", {"n": n})])

    writes = [repo.checkpoint(i, "w1", final(n), 60_000) for n, i in enumerate(ids)]
    writes.append(repo.checkpoint(ids[0], "intruder", final(1), 60_000))
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert isinstance(outcomes[-1], LeaseLost)
    assert all(isinstance(o, tuple) and o[0][0].seq == 3 for o in outcomes[:-1])
    assert max(sizes) > 1
    for n, i in enumerate(ids):
        record = await repo.get_execution(i)
        assert [s.output for s in record.steps] == [{"node": "a"}]
        if n % 2:
            assert (record.status, record.result) == (Status.COMPLETED, {"n": n})
            assert record.completed_at is not None and record.lease_owner == "w1"
        else:  # another row's result and status did not leak into this one
            assert (record.status, record.result) == (Status.RUNNING, None)
        assert (await event_types(repo, i))[-1] in ("execution.completed", "step.completed")
    # A terminal status is never overwritten, batched or not.
    again = [repo.checkpoint(i, "w1", Checkpoint(status=Status.FAILED), 60_000) for i in ids[1::2]]
    assert all(
        isinstance(o, LeaseLost) for o in await asyncio.gather(*again, return_exceptions=True)
    )
