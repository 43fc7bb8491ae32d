"""SIGKILL a worker, SIGKILL the API: everything accepted completes elsewhere, nothing twice."""

from __future__ import annotations

import asyncio
import signal
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.engine.state import utcnow
from app.engine.status import Status
from app.store.repository import Repository
from tests.chaos.conftest import (
    CountingPeer,
    http_chain,
    report,
    resumed_after,
    step_statuses,
    wait_all,
)
from tests.support.executions import insert_pending, wait_until
from tests.support.workers import api_process, worker_process

RUNS = 20
STEPS = 5


async def test_sigkill_a_worker_mid_run_and_another_finishes_every_run(
    settings: Any, engine: AsyncEngine, counter: tuple[CountingPeer, str], enqueue: Any
) -> None:
    peer, url = counter
    repo = Repository(engine)
    workflow = http_chain(url, STEPS, delay_ms=150)
    ids = [await insert_pending(repo, workflow) for _ in range(RUNS)]
    for execution_id in ids:
        await enqueue(execution_id)

    async def two_steps_done() -> bool:
        states = await step_statuses(repo, ids)
        return all(list(s.values()).count("completed") >= 2 for s in states.values())

    with worker_process(settings) as doomed:
        # Every run has finished a step or two, and calls are in flight.
        await wait_until(two_steps_done, "two steps done in every run", timeout_s=30)
        await wait_until(lambda: bool(peer.calls_in_flight()), "a call in flight")
        in_flight = peer.calls_in_flight()
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        killed_at = utcnow()
    done_before = await step_statuses(repo, ids)
    # The precondition: the kill cut steps off midway (else this proves nothing).
    assert in_flight, "no step was in flight when the worker was killed"
    for key in in_flight:
        run_id, node = key.split(":")
        assert done_before[UUID(run_id)].get(node) != "completed", key

    with worker_process(settings):
        await wait_all(repo, ids, Status.COMPLETED, timeout_s=45)

    for execution_id in ids:
        for node in (f"s{i}" for i in range(STEPS)):
            calls = peer.hits[f"{execution_id}:{node}"]
            if done_before[execution_id].get(node) == "completed":
                assert calls == 1, f"{execution_id}:{node} completed before the kill, re-ran"
            else:
                assert calls in (1, 2), f"{execution_id}:{node} ran {calls} times"
        record = await repo.get_execution(execution_id)
        assert all(s.attempt == 1 for s in record.steps)  # an interruption is no attempt
    delays = await resumed_after(engine, ids, killed_at)
    assert len(delays) == RUNS
    report("SIGKILL worker", delays)
    assert max(delays) < 15


async def test_sigkill_the_api_during_immediate_runs_and_a_worker_finishes_them(
    settings: Any, engine: AsyncEngine, counter: tuple[CountingPeer, str]
) -> None:
    peer, url = counter
    repo = Repository(engine)
    body = {"workflow": http_chain(url, 4, delay_ms=300), "input": {}, "mode": "immediate"}
    with api_process(settings) as (api, base):
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            requests = [
                asyncio.create_task(client.post("/workflow/run", json=body)) for _ in range(5)
            ]
            ids: list[UUID] = []

            async def all_running() -> bool:
                page = (await client.get("/executions")).json()["items"]
                ids[:] = [UUID(p["executionId"]) for p in page if p["status"] == "running"]
                return len(page) == len(ids) == 5

            await wait_until(all_running, "the API running the 5 runs")
            # A step done in every run, and the next in flight.
            await wait_until(
                lambda: (
                    all(peer.hits[f"{i}:s0"] == 1 for i in ids)
                    and peer.executions_in_flight() >= {str(i) for i in ids}
                ),
                "every run past its first step with a call in flight",
            )
            in_flight = peer.calls_in_flight()
            api.send_signal(signal.SIGKILL)
            api.wait()
            killed_at = utcnow()
            assert {key.split(":")[0] for key in in_flight} >= {str(i) for i in ids}
            for request in requests:  # their clients see the connection drop
                assert isinstance(
                    (await asyncio.gather(request, return_exceptions=True))[0], Exception
                )

    done_before = await step_statuses(repo, ids)
    with worker_process(settings):
        await wait_all(repo, ids, Status.COMPLETED, timeout_s=45)
    for execution_id in ids:
        for node, status in done_before[execution_id].items():
            if status == "completed":
                assert peer.hits[f"{execution_id}:{node}"] == 1
    delays = await resumed_after(engine, ids, killed_at)
    report("SIGKILL API", delays)
    assert len(delays) == 5 and max(delays) < 15


async def test_sigterm_a_worker_process_requeues_its_runs_at_once(
    settings: Any, engine: AsyncEngine, counter: tuple[CountingPeer, str], enqueue: Any
) -> None:
    peer, url = counter
    repo = Repository(engine)
    ids = [await insert_pending(repo, http_chain(url, 4, delay_ms=400)) for _ in range(5)]
    for execution_id in ids:
        await enqueue(execution_id)
    with worker_process(settings, TURNOUT_SHUTDOWN_GRACE_MS="2000") as leaving:
        await wait_until(
            lambda: peer.executions_in_flight() >= {str(i) for i in ids},
            "a call in flight in every run",
            timeout_s=30,
        )
        stopped_at = utcnow()
        leaving.send_signal(signal.SIGTERM)
        await asyncio.to_thread(leaving.wait, 10)
        exit_s = (utcnow() - stopped_at).total_seconds()
    assert exit_s < 2 + 2  # the in-flight calls (400 ms) finished within the grace
    for execution_id in ids:
        record = await repo.get_execution(execution_id, steps=False)
        assert record.status == Status.PENDING and record.lease_owner is None
    with worker_process(settings):
        await wait_all(repo, ids, Status.COMPLETED, timeout_s=30)
    assert all(calls == 1 for calls in peer.hits.values())  # nothing was cut off or re-run
    delays = await resumed_after(engine, ids, stopped_at)
    report("SIGTERM worker", delays)
