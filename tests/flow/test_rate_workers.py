"""Start-rate limits and the namespace-wide limit across real worker processes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.store.repository import Repository
from tests.flow.conftest import chain, most_at_once, run_interval, settled, submit
from tests.support.executions import wait_until
from tests.support.workers import worker_process

PER_SECOND = 4.0
BURST = 2


def over_the_rate(starts: Sequence[datetime], per_second: float, burst: int) -> list[str]:
    """Windows holding more starts than a token bucket allows: burst + rate x length."""
    times = sorted(starts)
    bad = []
    for i, first in enumerate(times):
        for j in range(i, len(times)):
            window = (times[j] - first).total_seconds()
            if j - i + 1 > burst + per_second * window + 1e-6:
                bad.append(f"{j - i + 1} starts in {window:.3f} s")
    return bad


async def test_starts_per_key_never_exceed_the_bucket_across_three_workers(
    flow_settings: Settings, flow_api: str, engine: AsyncEngine
) -> None:
    repo = Repository(engine)
    workflow = {
        "name": "sync",
        "nodes": [{"id": "a", "type": "noop"}],
        "rateLimit": {"key": "{{ input.account }}", "perSecond": PER_SECOND, "burst": BURST},
    }
    with contextlib.ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(worker_process(flow_settings))
        async with httpx.AsyncClient(base_url=flow_api, timeout=30) as client:
            accounts = ["a"] * 10 + ["b"] * 6
            answers = await asyncio.gather(
                *(submit(client, workflow, {"account": a}) for a in accounts)
            )
            ids = [UUID(a["executionId"]) for a in answers]

            async def a_run_waits_for_its_token() -> bool:
                for execution_id in ids:
                    record = await repo.get_execution(execution_id, steps=False)
                    reason = record.pending_reason or {}
                    if record.status == "pending" and reason.get("code") == "rate_limited":
                        return "retryAt" in reason
                return False

            await wait_until(a_run_waits_for_its_token, "a rate_limited pending run")
            records = await settled(repo, ids, "completed", timeout_s=60)
    starts_of = {
        account: [r.started_at for r in records if r.input["account"] == account]
        for account in ("a", "b")
    }
    for account, maybe in starts_of.items():
        starts = [s for s in maybe if s is not None]
        assert len(starts) == len(maybe)
        assert not over_the_rate(starts, PER_SECOND, BURST), account
        # Prompt: a run starts when its token is due, not at some later poll.
        span = (max(starts) - min(starts)).total_seconds()
        assert span <= (len(starts) - BURST) / PER_SECOND + 1.5, (account, span)
    # The keys are separate buckets: b's runs did not wait behind a's.
    a_last = max(s for s in starts_of["a"] if s is not None)
    b_last = max(s for s in starts_of["b"] if s is not None)
    assert b_last < a_last


async def test_the_namespace_limit_holds_for_workflows_without_their_own(
    flow_settings: Settings, engine: AsyncEngine
) -> None:
    from app.main import create_app
    from tests.servers import run_server

    repo = Repository(engine)
    limited = flow_settings.model_copy(update={"namespace_concurrency": 2})
    env = {"TURNOUT_NAMESPACE_CONCURRENCY": "2"}
    with (
        run_server(create_app(limited)) as url,
        worker_process(limited, **env),
        worker_process(limited, **env),
    ):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            answers = await asyncio.gather(
                *(submit(client, chain(f"wf{i % 3}", 300), {}) for i in range(9))
            )
            ids = [UUID(a["executionId"]) for a in answers]
            first = await client.get(f"/execution/{ids[0]}")
            assert first.json()["flowControl"] == {"namespaceLimit": 2}
            records = await settled(repo, ids, "completed", timeout_s=60)
    assert most_at_once([run_interval(r) for r in records]) == 2
