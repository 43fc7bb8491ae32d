"""The claim's fast path skips rows with flow control; the gated claim takes them."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import update

from app.engine.state import utcnow
from app.store.repository import Repository
from app.store.tables import workflow_executions
from tests.support.executions import insert_pending

ONE = {"nodes": [{"id": "a", "type": "noop"}]}
KEYED = {"concurrency": {"key": "k", "limit": 2, "strategy": "queue"}}
STARTED: tuple[str, dict[str, Any]] = ("execution.started", {})


async def test_the_fast_claim_takes_plain_rows_only(repo: Repository) -> None:
    plain = await insert_pending(repo, ONE)
    gated = await insert_pending(repo, ONE, flow=KEYED)
    assert await repo.claim(plain, "w", 60_000, STARTED) is not None
    assert await repo.claim(gated, "w", 60_000, STARTED) is None
    taken = await repo.claim_gated(gated, "w", 60_000, STARTED)
    assert taken.claimed is not None and taken.claimed[0].status == "running"


async def test_concurrent_gated_claims_take_exactly_the_limit(
    repo: Repository,
) -> None:
    ids = [await insert_pending(repo, ONE, flow=KEYED) for _ in range(8)]
    results = await asyncio.gather(
        *(repo.claim_gated(i, f"w{n}", 60_000, STARTED) for n, i in enumerate(ids))
    )
    assert sum(r.claimed is not None for r in results) == 2
    refused = [r.refusal for r in results if r.refusal is not None]
    assert len(refused) == 6
    assert {r.reason["code"] for r in refused} == {"concurrency_limit"}
    waiting = await repo.get_execution(ids[[r.refusal is not None for r in results].index(True)])
    assert waiting.status == "pending" and waiting.pending_reason is not None
    assert waiting.pending_reason["running"] == 2


def keyed(strategy: str, limit: int = 1) -> dict[str, Any]:
    return {"concurrency": {"key": "k", "limit": limit, "strategy": strategy}}


async def test_cancel_in_progress_names_the_older_runs_beyond_the_limit(
    repo: Repository,
) -> None:
    flow = keyed("cancel_in_progress", limit=2)
    older = [await insert_pending(repo, ONE, flow=flow) for _ in range(3)]
    assert (await repo.claim_gated(older[0], "w", 60_000, STARTED)).claimed is not None
    newest = await insert_pending(repo, ONE, flow=flow)
    gated = await repo.claim_gated(newest, "w", 60_000, STARTED)
    # Two slots: the newest keeps the one newest older run beside it; the rest are superseded.
    assert sorted(map(str, gated.supersede)) == sorted(map(str, older[:2]))
    assert gated.claimed is not None  # one slot was free


async def test_cancel_newest_refuses_a_newcomer_but_not_a_resumed_run(
    repo: Repository,
) -> None:
    flow = keyed("cancel_newest")
    first = await insert_pending(repo, ONE, flow=flow)
    assert (await repo.claim_gated(first, "w", 60_000, STARTED)).claimed is not None
    newcomer = await insert_pending(repo, ONE, flow=flow)
    refused = await repo.claim_gated(newcomer, "w", 60_000, STARTED)
    assert refused.refusal is not None and refused.refusal.cancel_self
    resumed = await insert_pending(repo, ONE, flow=flow)
    async with repo.engine.begin() as conn:  # as a run back from a wait: it started before
        await conn.execute(
            update(workflow_executions)
            .where(workflow_executions.c.id == resumed)
            .values(started_at=utcnow())
        )
    waits = await repo.claim_gated(resumed, "w", 60_000, STARTED)
    assert waits.refusal is not None and not waits.refusal.cancel_self
