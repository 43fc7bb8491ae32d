"""The repository's guarantees on both databases: guarded status changes, lease-fenced writes,
events written with the change they describe, terminal statuses never overwritten."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.engine.state import StepState, utcnow
from app.engine.status import TERMINAL, Status, StepStatus
from app.errors import LeaseLost
from app.store.records import Checkpoint
from app.store.repository import Repository
from tests.support.executions import insert_pending

ONE_STEP = {"nodes": [{"id": "a", "type": "noop"}]}
STARTED: tuple[str, dict[str, Any]] = ("execution.started", {})


def step(status: StepStatus, node: str = "a") -> StepState:
    return StepState(key=node, node_id=node, status=status, attempt=1, started_at=utcnow())


async def event_types(repo: Repository, execution_id: object) -> list[str]:
    return [e.type for e in await repo.events_after(execution_id, 0)]  # type: ignore[arg-type]


async def test_claim_takes_a_pending_execution_once(repo: Repository) -> None:
    execution_id = await insert_pending(repo, ONE_STEP)
    first, second = await asyncio.gather(
        repo.claim(execution_id, "w1", 60_000, STARTED),
        repo.claim(execution_id, "w2", 60_000, STARTED),
    )
    claimed = [c for c in (first, second) if c is not None]
    assert len(claimed) == 1
    record, event = claimed[0]
    assert record.status == Status.RUNNING and record.lease_owner in ("w1", "w2")
    assert (event.type, event.seq) == ("execution.started", 2)
    assert await event_types(repo, execution_id) == ["execution.created", "execution.started"]


async def test_an_expired_lease_is_taken_over_and_fences_the_old_runner(repo: Repository) -> None:
    execution_id = await insert_pending(repo, ONE_STEP)
    assert await repo.claim(execution_id, "old", 1, STARTED)
    await asyncio.sleep(0.01)
    assert await repo.claim(execution_id, "new", 60_000, STARTED)

    stale = Checkpoint(
        steps=[step(StepStatus.COMPLETED)],
        events=[("step.completed", {"nodeId": "a"})],
        status=Status.COMPLETED,
        release_lease=True,
    )
    with pytest.raises(LeaseLost):
        await repo.checkpoint(execution_id, "old", stale, 60_000)
    record = await repo.get_execution(execution_id)
    assert record.status == Status.RUNNING and record.lease_owner == "new"
    assert record.steps == []  # nothing of the stale runner's was written
    assert (
        await event_types(repo, execution_id) == ["execution.created"] + ["execution.started"] * 2
    )

    fresh = Checkpoint(steps=[step(StepStatus.COMPLETED)], events=[("step.completed", {})])
    stored, control = await repo.checkpoint(execution_id, "new", fresh, 60_000)
    assert [e.seq for e in stored] == [4] and control is None
    assert [s.status for s in (await repo.get_execution(execution_id)).steps] == ["completed"]


async def test_a_live_lease_cannot_be_claimed(repo: Repository) -> None:
    execution_id = await insert_pending(repo, ONE_STEP)
    assert await repo.claim(execution_id, "w1", 60_000, STARTED)
    assert await repo.claim(execution_id, "w2", 60_000, STARTED) is None


@pytest.mark.parametrize("final", sorted(TERMINAL))
async def test_a_terminal_status_is_never_overwritten(repo: Repository, final: str) -> None:
    execution_id = await insert_pending(repo, ONE_STEP)
    assert await repo.claim(execution_id, "w", 60_000, STARTED)
    settle = Checkpoint(events=[(f"execution.{final}", {})], status=final, release_lease=True)
    await repo.checkpoint(execution_id, "w", settle, 60_000)

    # Only an explicit retry (a new attempt) takes a failed or cancelled execution back to
    # pending; nothing ever moves a completed one.
    retryable = final in (Status.FAILED, Status.CANCELLED)
    for target in (Status.RUNNING, Status.PENDING, Status.PAUSED, Status.WAITING, *TERMINAL):
        if target != final and not (retryable and target == Status.PENDING):
            assert not await repo.transition(execution_id, target, (f"execution.{target}", {}))
    assert await repo.claim(execution_id, "w2", 1, STARTED) is None
    with pytest.raises(LeaseLost):  # even the runner that held it cannot write again
        await repo.checkpoint(execution_id, "w", Checkpoint(status=Status.COMPLETED), 60_000)
    record = await repo.get_execution(execution_id)
    assert record.status == final
    assert (await event_types(repo, execution_id))[-1] == f"execution.{final}"


async def test_every_change_comes_with_its_event_and_seq_only_grows(repo: Repository) -> None:
    execution_id = await insert_pending(repo, ONE_STEP)
    assert await repo.transition(execution_id, Status.PAUSED, ("execution.paused", {}))
    assert await repo.transition(execution_id, Status.PENDING, ("execution.resumed", {}))
    assert await repo.claim(execution_id, "w", 60_000, STARTED)
    await repo.checkpoint(
        execution_id, "w", Checkpoint(events=[("step.started", {}), ("step.completed", {})]), 1
    )
    events = await repo.events_after(execution_id, 0)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.type for e in events] == [
        "execution.created", "execution.paused", "execution.resumed", "execution.started",
        "step.started", "step.completed",
    ]  # fmt: skip
    assert (await repo.get_execution(execution_id, steps=False)).last_seq == 6
    assert [e.seq for e in await repo.events_after(execution_id, 4)] == [5, 6]


async def test_an_idempotency_key_gives_back_the_first_execution(repo: Repository) -> None:
    first = await insert_pending(repo, ONE_STEP, idempotency_key="k-1", request_hash="h")
    second = await insert_pending(repo, ONE_STEP, idempotency_key="k-1", request_hash="h")
    assert first == second
    assert await event_types(repo, first) == ["execution.created"]
