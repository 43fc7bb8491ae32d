"""`python -m bench.flow_claims`: what flow control costs at the claim, on Postgres.

Creates N pending executions per case in a throwaway database and claims them one after
another as a worker does (the fast claim, then the gated one when the row has flow
control): without flow control, with a concurrency key, with a key and a rate limit (limits
high enough that every claim is let through). Prints milliseconds per claim.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from app.store.database import make_engine
from app.store.records import NewExecution
from app.store.repository import Repository
from bench.services import DEFAULT_PG, DEFAULT_REDIS, Namespace, bench_database

ONE = {"nodes": [{"id": "a", "type": "noop"}]}
STARTED: tuple[str, dict[str, Any]] = ("execution.started", {})
CASES: dict[str, dict[str, Any] | None] = {
    "no flow control (fast claim)": None,
    "concurrency key": {"concurrency": {"key": "k", "limit": 10**6, "strategy": "queue"}},
    "concurrency key + rate limit": {
        "concurrency": {"key": "r", "limit": 10**6, "strategy": "queue"},
        "rateLimit": {"key": "r", "perSecond": 1e6, "burst": 10**6},
    },
}


async def _pending(repo: Repository, flow: dict[str, Any] | None, n: int) -> list[uuid.UUID]:
    ids = []
    for _ in range(n):
        new = NewExecution(
            id=uuid.uuid4(),
            workflow_name="bench",
            workflow_id=None,
            workflow_version=None,
            status="pending",
            execution_mode="queued",
            requested_mode="queued",
            input={},
            definition=ONE,
            complexity=None,
            progress_total=1,
            flow=flow,
        )
        ids.append((await repo.create_execution(new, [("execution.created", {})]))[0].id)
    return ids


async def measure(pg: str, n: int) -> None:
    async with bench_database(Namespace(pg, DEFAULT_REDIS)) as url:
        repo = Repository(make_engine(url))
        try:
            for label, flow in CASES.items():
                ids = await _pending(repo, flow, n)
                started = time.perf_counter()
                for execution_id in ids:
                    claimed = await repo.claim(execution_id, "bench", 60_000, STARTED)
                    if claimed is None:
                        gated = await repo.claim_gated(execution_id, "bench", 60_000, STARTED)
                        claimed = gated.claimed
                    assert claimed is not None, label
                per_claim = (time.perf_counter() - started) / n * 1000
                print(f"{label}: {per_claim:.2f} ms per claim ({n} claims)")
        finally:
            await repo.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pg", default=DEFAULT_PG, help="an admin URL of the Postgres server")
    parser.add_argument("-n", type=int, default=300, help="claims per case")
    args = parser.parse_args()
    asyncio.run(measure(args.pg, args.n))


if __name__ == "__main__":
    main()
