"""Graceful shutdown of a worker: its executions are checkpointed and requeued at once."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from typing import Any

import httpx
import pytest
from arq import create_pool
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.engine.status import Status
from app.execution.queue import ArqQueue, redis_settings
from app.store.repository import Repository
from tests.support.executions import insert_pending, wait_status
from tests.support.workers import api_process, running_worker


def three_steps(delay_ms: int) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "a", "type": "transform", "params": {"v": 1}},
            {"id": "b", "type": "delay", "params": {"ms": delay_ms}, "dependsOn": ["a"]},
            {"id": "c", "type": "transform", "params": {"v": 2}, "dependsOn": ["b"]},
        ]
    }


async def submit(settings: Settings, repo: Repository, definition: dict[str, Any]) -> uuid.UUID:
    execution_id = await insert_pending(repo, definition)
    pool = await create_pool(redis_settings(settings))
    try:
        await ArqQueue(pool, settings.queue_name).enqueue(execution_id)
    finally:
        await pool.aclose()
    return execution_id


async def wait_for(repo: Repository, execution_id: uuid.UUID, node: str, status: str) -> None:
    for _ in range(500):
        steps = {s.node_id: s for s in (await repo.get_execution(execution_id)).steps}
        if node in steps and steps[node].status == status:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"step {node} never became {status}")


async def events(repo: Repository, execution_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
    return [(e.type, e.data) for e in await repo.events_after(execution_id, 0)]


@pytest.fixture
def repo(engine: AsyncEngine) -> Repository:
    return Repository(engine)


@pytest.mark.parametrize(
    ("delay_ms", "grace_ms", "b_finished"),
    [(1_500, 5_000, True), (5_000, 200, False)],
    ids=["step-finishes-within-grace", "grace-runs-out"],
)
async def test_sigterm_hands_the_run_over_and_the_next_worker_finishes_it(
    settings: Settings, repo: Repository, delay_ms: int, grace_ms: int, b_finished: bool
) -> None:
    settings = settings.model_copy(
        update={"shutdown_grace_ms": grace_ms, "durable_delay_threshold_ms": 60_000}
    )
    execution_id = await submit(settings, repo, three_steps(delay_ms))
    async with running_worker(settings) as worker:
        await wait_for(repo, execution_id, "b", "running")
        start = time.monotonic()
        worker.handle_sig(signal.SIGTERM)  # what arq does on SIGTERM: cancel running jobs
        for _ in range(1000):
            if all(t.done() for t in worker.tasks.values()):
                break
            await asyncio.sleep(0.01)
        stopped_s = time.monotonic() - start
    assert stopped_s < grace_ms / 1000 + 2

    record = await repo.get_execution(execution_id)
    steps = {s.node_id: s for s in record.steps}
    assert record.status == Status.PENDING
    assert record.lease_owner is None  # released: the next worker need not wait for it
    assert steps["a"].status == "completed"
    assert (steps["b"].status == "completed") is b_finished
    assert "c" not in steps or steps["c"].status == "pending"
    handover = [d for t, d in await events(repo, execution_id) if t == "execution.promoted"]
    assert handover and "shutting down" in handover[-1]["reason"]

    # Requeued at once: a new worker picks it up without waiting for any lease.
    async with running_worker(settings):
        record = await wait_status(repo, execution_id, Status.COMPLETED)
    attempts = {s.node_id: s.attempt for s in record.steps}
    assert attempts == {"a": 1, "b": 1, "c": 1}  # nothing re-ran; an interruption is no attempt
    started = [t for t, _ in await events(repo, execution_id) if t == "step.started"]
    assert len(started) == (3 if b_finished else 4)


async def test_sigterm_on_the_api_answers_its_immediate_runs_202_and_queues_them(
    settings: Settings, repo: Repository
) -> None:
    body = {"workflow": three_steps(4_000), "input": {}, "mode": "immediate"}
    with api_process(settings, TURNOUT_SHUTDOWN_GRACE_MS="300") as (proc, base):
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            request = asyncio.create_task(client.post("/workflow/run", json=body))
            for _ in range(500):
                page = (await client.get("/executions")).json()
                if page["items"]:
                    break
                await asyncio.sleep(0.01)
            execution_id = uuid.UUID(page["items"][0]["executionId"])
            await wait_for(repo, execution_id, "b", "running")
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            response = await request
            answered_s = time.monotonic() - start
        # A clean exit; uvicorn re-raises the signal it caught once it has shut down.
        assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == Status.PENDING
    assert answered_s < 2.5  # the grace, not the 4 s step or the 30 s budget
    async with running_worker(settings):
        record = await wait_status(repo, execution_id, Status.COMPLETED)
    assert {s.node_id: s.attempt for s in record.steps} == {"a": 1, "b": 1, "c": 1}
