"""The claim's fast path skips rows with flow control; the gated claim takes them."""

from __future__ import annotations

import asyncio
from typing import Any

from app.store.repository import Repository
from tests.integration.test_repository import repo  # noqa: F401  (both databases)
from tests.support.executions import insert_pending

ONE = {"nodes": [{"id": "a", "type": "noop"}]}
KEYED = {"concurrency": {"key": "k", "limit": 2, "strategy": "queue"}}
STARTED: tuple[str, dict[str, Any]] = ("execution.started", {})


async def test_the_fast_claim_takes_plain_rows_only(repo: Repository) -> None:  # noqa: F811
    plain = await insert_pending(repo, ONE)
    gated = await insert_pending(repo, ONE, flow=KEYED)
    assert await repo.claim(plain, "w", 60_000, STARTED) is not None
    assert await repo.claim(gated, "w", 60_000, STARTED) is None
    taken = await repo.claim_gated(gated, "w", 60_000, STARTED)
    assert taken.claimed is not None and taken.claimed[0].status == "running"


async def test_concurrent_gated_claims_take_exactly_the_limit(
    repo: Repository,  # noqa: F811
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
