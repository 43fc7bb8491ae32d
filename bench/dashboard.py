"""`python -m bench.dashboard`: how fast the dashboard's pages render, and what open pages cost.

1. List: 10,000 executions stored; `GET /ui/` (newest 50) and a filtered page, timed from
   the client on the same machine (an upper bound of server time). Target <= 300 ms.
2. A 1,000-node execution, run to completion by a worker: `GET /ui/executions/{id}` (the
   outline view, 1,000 step rows). Target <= 500 ms.
3. 100 open pages each following an execution (its SSE stream), plus the list's global
   feed: Postgres backends of the API before and while they are open, and how many are busy
   with the same transaction or query in two samples 0.5 s apart (held by a page).
   Target: no more connections, none held busy.

The API and the worker are separate processes, as in production."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from app.store.database import make_engine
from bench.config import Progress
from bench.report import write_results
from bench.services import DEFAULT_PG, DEFAULT_REDIS, Namespace, Services, bench_database
from bench.stats import percentile
from bench.streams import Stream, create_pending

WIDE = {
    "name": "dash-wide",
    "nodes": [{"id": f"n{i}", "type": "noop", "params": {}} for i in range(1000)],
}


async def timed_gets(base: str, path: str, count: int) -> dict[str, float]:
    """`count` sequential GETs of `path` after one warm-up; latencies in ms."""
    out = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        (await client.get(path)).raise_for_status()
        for _ in range(count):
            start = time.perf_counter()
            response = await client.get(path)
            out.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
    return {
        "p50": round(statistics.median(out), 1),
        "p95": round(percentile(out, 95), 1),
        "max": round(max(out), 1),
        "bytes": len(response.content),
    }


async def run_wide(base: str, p: Progress) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        answer = await client.post("/workflow/run", json={"workflow": WIDE, "mode": "queued"})
        answer.raise_for_status()
        execution_id = str(answer.json()["executionId"])
        deadline = time.monotonic() + 300
        while (await client.get(f"/execution/{execution_id}")).json()["status"] != "completed":
            if time.monotonic() > deadline:
                raise RuntimeError("the 1,000-node execution did not complete in 300 s")
            await asyncio.sleep(0.5)
    p(f"1,000-node execution {execution_id} completed")
    return execution_id


async def backends(database_url: str) -> dict[str, Any]:
    """Postgres sessions on the bench database, other than this one: all, and the busy ones
    (not idle), each as (pid, the start of its transaction or query)."""
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT pid, state, coalesce(xact_start, query_start) FROM "
                        "pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid()"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    busy = {(int(pid), str(since)) for pid, state, since in rows if state != "idle"}
    return {"total": len(rows), "busy": len(busy), "held": busy}


def held_across(samples: list[dict[str, Any]]) -> int:
    """The most sessions busy with the same transaction or query in two samples in a row
    (0.5 s apart): what an open page would hold. A periodic query of the service (the
    reconciler, the metrics sampler) caught by one sample is not that."""
    return max(
        (len(a["held"] & b["held"]) for a, b in pairwise(samples)),
        default=0,
    )


async def open_pages(
    base: str, database_url: str, ids: list[uuid.UUID], p: Progress
) -> dict[str, Any]:
    # What 100 people opening their pages at once load first: the API's pool grows to what
    # such a burst needs; the question is whether the open pages then hold any of it.
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        pages = [client.get(f"/ui/executions/{execution_id}") for execution_id in ids]
        for response in await asyncio.gather(*pages):
            response.raise_for_status()
    await asyncio.sleep(1.0)
    before = await backends(database_url)
    streams = [Stream() for _ in ids]
    await asyncio.gather(*(s.open(base, i) for s, i in zip(streams, ids, strict=True)))
    tasks = [asyncio.create_task(s.read()) for s in streams]
    _, feed_writer = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
    feed_writer.write(
        b"GET /executions/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    await feed_writer.drain()
    await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in streams)), 60)
    samples = []
    for _ in range(10):  # held open for 5 s
        await asyncio.sleep(0.5)
        samples.append(await backends(database_url))
    open_now = sum(1 for t in tasks if not t.done())
    for s in streams:
        s.close()
    feed_writer.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    last = {k: v for k, v in samples[-1].items() if k != "held"}
    p(f"{open_now} streams held; backends before {before['total']}, while open {last}")
    return {
        "pages": len(ids),
        "streamsOpen": open_now,
        "backendsBefore": {k: v for k, v in before.items() if k != "held"},
        "backendsWhileOpenMax": max(s["total"] for s in samples),
        "busyWhileOpenMax": held_across(samples),
        "busyInOneSampleMax": max(s["busy"] for s in samples),
        "added": max(s["total"] for s in samples) - before["total"],
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    p = Progress()
    ns = Namespace(args.pg, args.redis)
    results: dict[str, Any] = {}
    async with bench_database(ns):
        services = Services(ns)
        try:
            # The wide run first: a worker's reconciler would pick up the pending ones below.
            _, base = await services.start_api()
            worker = await services.start_worker()
            wide = await run_wide(base, p)
            await services.stop(worker)
            ids = await create_pending(ns.database_url, args.executions)
            p(f"{len(ids) + 1} executions stored")
            results["list"] = await timed_gets(base, "/ui/", args.repeat)
            results["listFiltered"] = await timed_gets(
                base, "/ui/?status=pending&workflow=stream-bench", args.repeat
            )
            results["listJson"] = await timed_gets(base, "/executions?limit=50", args.repeat)
            p(f"list {results['list']}")
            results["execution1000"] = await timed_gets(base, f"/ui/executions/{wide}", args.repeat)
            results["execution1000Json"] = await timed_gets(base, f"/execution/{wide}", args.repeat)
            p(f"1,000-node page {results['execution1000']}")
            # Pending executions with no worker: their streams wait, live, as long as we like.
            results["openPages"] = await open_pages(base, ns.database_url, ids[: args.pages], p)
        finally:
            await services.close()
    results["targets"] = {
        "list<=300ms": results["list"]["p95"] <= 300,
        "execution1000<=500ms": results["execution1000"]["p95"] <= 500,
        "openPagesAddNoConnections": results["openPages"]["added"] <= 0
        and results["openPages"]["busyWhileOpenMax"] == 0,
    }
    return results


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page")
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = asyncio.run(main(args))
    write_results(results, args.json)
    return 0 if all(results["targets"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(cli())
