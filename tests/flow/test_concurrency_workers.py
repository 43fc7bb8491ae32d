"""Concurrency keys across three real worker processes, checked from the stored timestamps."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.store.audit import AuditFilter, AuditStore
from app.store.repository import Repository
from tests.flow.conftest import chain, delaying, most_at_once, run_interval, settled, submit
from tests.support.executions import wait_until
from tests.support.workers import worker_process

TENANTS = ("acme", "globex", "initech")


async def test_never_more_than_the_limit_run_at_once_per_key_across_three_workers(
    flow_settings: Settings, flow_api: str, engine: AsyncEngine
) -> None:
    repo = Repository(engine)
    limits = {"serial": 1, "pairs": 2}
    workflows = {
        name: delaying(name, 250, concurrency={"key": "{{ input.tenant }}", "limit": limit})
        for name, limit in limits.items()
    }
    with contextlib.ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(worker_process(flow_settings))
        async with httpx.AsyncClient(base_url=flow_api, timeout=30) as client:
            jobs = [
                (name, tenant)
                for name in limits
                for tenant in itertools.islice(itertools.cycle(TENANTS), 20)
            ]
            answers = await asyncio.gather(
                *(submit(client, workflows[name], {"tenant": t}) for name, t in jobs)
            )
            ids = [UUID(a["executionId"]) for a in answers]
            # The excess waits pending, and says why.
            await wait_until(
                lambda: any_reason(repo, ids, "concurrency_limit"), "a concurrency_limit reason"
            )
            records = await settled(repo, ids, "completed")
    by_key: dict[tuple[str, str], list[Any]] = {}
    for record in records:
        by_key.setdefault((record.workflow_name, record.input["tenant"]), []).append(
            run_interval(record)
        )
    for (name, tenant), intervals in by_key.items():
        assert most_at_once(intervals) <= limits[name], (name, tenant)
    # The limit is per key, not a global lock: the pairs used both slots, and keys overlapped.
    assert max(most_at_once(v) for (n, _), v in by_key.items() if n == "pairs") == 2
    serial = [i for (n, _), v in by_key.items() if n == "serial" for i in v]
    assert most_at_once(serial) > 1


async def any_reason(repo: Repository, ids: list[UUID], code: str) -> bool:
    for execution_id in ids:
        record = await repo.get_execution(execution_id, steps=False)
        if record.status == "pending" and (record.pending_reason or {}).get("code") == code:
            return True
    return False


async def test_a_durable_wait_holds_no_slot_and_a_resumed_run_needs_one_again(
    flow_settings: Settings, flow_api: str, engine: AsyncEngine
) -> None:
    repo = Repository(engine)
    limit = {"concurrency": {"key": "{{ input.tenant }}", "limit": 1}}
    with worker_process(flow_settings), worker_process(flow_settings):
        async with httpx.AsyncClient(base_url=flow_api, timeout=30) as client:
            # `sleeper` parks for 1.5 s (durable: status waiting), so `holder` may start;
            # holder runs 2.5 s in the worker, so sleeper wakes while the slot is taken.
            sleeper = UUID(
                (await submit(client, delaying("w", 1500, **limit), {"tenant": "t"}))["executionId"]
            )
            await settled(repo, [sleeper], "waiting", timeout_s=10)
            holder_wf = chain("w", 450, 450, 450, 450, 450, **limit)
            holder = UUID((await submit(client, holder_wf, {"tenant": "t"}))["executionId"])
            await wait_until(
                lambda: any_reason(repo, [sleeper], "concurrency_limit"),
                "the woken sleeper held back",
            )
            waiting, running = await settled(repo, [sleeper, holder], "completed")
    # The holder started while the sleeper waited (a wait holds no slot) ...
    assert running.started_at is not None and waiting.started_at is not None
    assert running.started_at > waiting.started_at
    after = next(s for s in waiting.steps if s.node_id == "after")
    # ... and the sleeper's next step ran only once the holder had released the slot.
    assert running.completed_at is not None and after.started_at is not None
    assert after.started_at >= running.completed_at


async def test_cancel_in_progress_cancels_the_running_one_for_the_newcomer(
    flow_settings: Settings, flow_api: str, engine: AsyncEngine
) -> None:
    repo = Repository(engine)
    workflow = delaying(
        "deploy",
        450,
        concurrency={"key": "{{ input.env }}", "limit": 1, "strategy": "cancel_in_progress"},
    )
    workflow["nodes"][1] = {
        "id": "after",
        "type": "delay",
        "params": {"ms": 450},
        "dependsOn": ["wait"],
    }
    with worker_process(flow_settings), worker_process(flow_settings):
        async with httpx.AsyncClient(base_url=flow_api, timeout=30) as client:
            old = UUID((await submit(client, workflow, {"env": "prod"}))["executionId"])
            other = UUID((await submit(client, workflow, {"env": "staging"}))["executionId"])
            await settled(repo, [old], "running", timeout_s=10)
            new = UUID((await submit(client, workflow, {"env": "prod"}))["executionId"])
            first, second, third = await settled(repo, [old, new, other])
    assert first.status == "cancelled", first.status
    assert second.status == "completed" and third.status == "completed"
    assert first.completed_at is not None and second.started_at is not None
    assert second.started_at >= first.completed_at  # the slot was freed first
    events = await repo.events_after(old, 0)
    cancelled = [e for e in events if e.type == "execution.cancelled"]
    assert cancelled and cancelled[0].data.get("requestedBy") == "concurrency:cancel_in_progress"
    audited, _ = await AuditStore(engine).list(AuditFilter(action="execution.cancel"), limit=10)
    assert [(a["actor"], a["target"]) for a in audited] == [
        ("concurrency:cancel_in_progress", f"execution/{old}")
    ]
    assert audited[0]["details"]["supersededBy"] == str(new)


async def test_cancel_newest_cancels_the_newcomer_while_the_key_is_busy(
    flow_settings: Settings, flow_api: str, engine: AsyncEngine
) -> None:
    repo = Repository(engine)
    workflow = delaying(
        "sync", 450, concurrency={"key": "{{ input.a }}", "limit": 1, "strategy": "cancel_newest"}
    )
    with worker_process(flow_settings):
        async with httpx.AsyncClient(base_url=flow_api, timeout=30) as client:
            first = UUID((await submit(client, workflow, {"a": 1}))["executionId"])
            await settled(repo, [first], "running", timeout_s=10)
            newest = UUID((await submit(client, workflow, {"a": 1}))["executionId"])
            done, cancelled = await settled(repo, [first, newest])
            # The key free again: a newcomer runs.
            later = UUID((await submit(client, workflow, {"a": 1}))["executionId"])
            (again,) = await settled(repo, [later])
    assert done.status == "completed" and again.status == "completed"
    assert cancelled.status == "cancelled" and cancelled.started_at is None
    assert cancelled.error is not None and cancelled.error["code"] == "concurrency_limit"


async def test_a_worker_killed_while_holding_a_slot_does_not_wedge_the_key(
    flow_settings: Settings, flow_api: str, engine: AsyncEngine
) -> None:
    repo = Repository(engine)
    workflow = delaying("fragile", 400, concurrency={"key": "{{ input.k }}", "limit": 1})
    workflow["nodes"][1] = {
        "id": "after",
        "type": "delay",
        "params": {"ms": 400},
        "dependsOn": ["wait"],
    }
    with worker_process(flow_settings) as survivor:
        async with httpx.AsyncClient(base_url=flow_api, timeout=30) as client:
            with worker_process(flow_settings) as doomed:
                # Eight one at a time (~6 s): either worker takes each freed slot, so with
                # four the survivor took them all about once in sixteen runs.
                ids = [
                    UUID((await submit(client, workflow, {"k": "x"}))["executionId"])
                    for _ in range(8)
                ]

                async def doomed_holds_it() -> bool:
                    for execution_id in ids:
                        record = await repo.get_execution(execution_id, steps=False)
                        if record.status == "running" and f":{doomed.pid}:" in (
                            record.lease_owner or ""
                        ):
                            return True
                    return False

                await wait_until(doomed_holds_it, "a slot held by the doomed worker", timeout_s=30)
                doomed.send_signal(signal.SIGKILL)
                doomed.wait()
            records = await settled(repo, ids, "completed", timeout_s=60)
        assert survivor.poll() is None
    assert most_at_once([run_interval(r) for r in records]) == 1
