"""`python -m bench.analytics`: how fast the analytics answer with 10^6 executions stored.

A throwaway Postgres database is migrated and filled with `generate_series` (20 workflows x
3 versions, 80 % completed, 10 % failed with one of 4 codes, 10 % cancelled, one every 0.5 s
so all of them fall into the default 7-day range: the worst case). Then each endpoint is
called through the API (in process, `httpx.ASGITransport`: the route, the SQL and the JSON)
`--repeat` times; the report gives the median and the worst. Target: <= 200 ms each.
The hourly rollups are built after the fill, as migration 0005's backfill builds them."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

import httpx
from sqlalchemy import text

from app.config import Settings
from app.main import create_app
from app.store.database import make_engine
from app.store.rollups import RollupStore
from bench.services import DEFAULT_PG, DEFAULT_REDIS, Namespace, bench_database

FILL = """
INSERT INTO workflow_executions (id, workflow_name, workflow_version, status, execution_mode,
  requested_mode, created_at, updated_at, started_at, completed_at, input, definition,
  metadata, tags, error, step_retries, cpu_ms, bytes_sent, bytes_received, priority, attempt,
  recoveries, elapsed_ms, last_seq, progress_done, progress_total)
SELECT gen_random_uuid(), 'wf' || (g % 20), (g % 3)::text,
  CASE WHEN g % 10 < 8 THEN 'completed' WHEN g % 10 = 8 THEN 'failed' ELSE 'cancelled' END,
  'queued', 'auto', c, c, c + (g % 50) * interval '1 millisecond',
  c + (g % 50) * interval '1 millisecond' + (random() * 2000) * interval '1 millisecond',
  '{}'::jsonb, '{}'::jsonb, '{}'::jsonb, '[]'::jsonb,
  CASE WHEN g % 10 = 8 THEN jsonb_build_object('code', 'code' || (g % 4), 'message', 'x') END,
  g % 3, random() * 10, 100, 1000, 0, 1, 0, 0, 0, 1, 1
FROM generate_series(1, :n) AS g, LATERAL (SELECT now() - g * interval '0.5 second' AS c) t
"""


async def fill(url: str, n: int) -> float:
    engine = make_engine(url)
    started = time.perf_counter()
    try:
        async with engine.begin() as conn:
            await conn.execute(text(FILL), {"n": n})
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE workflow_executions"))
        folding = time.perf_counter()
        await RollupStore(engine).fold(full=True)  # what migration 0005's backfill does
        print(f"rollups built in {time.perf_counter() - folding:.1f} s", file=sys.stderr)
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE execution_rollups"))
    finally:
        await engine.dispose()
    return time.perf_counter() - started


async def measure(url: str, redis_url: str, repeat: int) -> dict[str, list[float]]:
    # No Redis: the in-process queue (the API answers the same; nothing is enqueued).
    settings = Settings(DATABASE_URL=url, REDIS_URL=None, log_level="WARNING")
    app = create_app(settings)
    timings: dict[str, list[float]] = {}
    paths = {
        "GET /analytics/workflows": "/analytics/workflows",
        "GET /analytics/workflows/wf7/timeseries?bucket=1h": (
            "/analytics/workflows/wf7/timeseries?bucket=1h"
        ),
    }
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, path in paths.items():
                for i in range(repeat + 1):
                    started = time.perf_counter()
                    answer = await client.get(path)
                    elapsed = (time.perf_counter() - started) * 1000
                    answer.raise_for_status()
                    if i:  # the first call warms the caches
                        timings.setdefault(name, []).append(elapsed)
    return timings


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics", description=__doc__)
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    args = parser.parse_args(argv)
    ns = Namespace(args.pg, args.redis)
    async with bench_database(ns) as url:
        seconds = await fill(url, args.executions)
        print(f"filled {args.executions:,} executions in {seconds:.1f} s", file=sys.stderr)
        timings = await measure(url, args.redis, args.repeat)
    report: dict[str, Any] = {}
    for name, values in timings.items():
        report[name] = (statistics.median(values), max(values))
        verdict = "ok" if statistics.median(values) <= 200 else "over the 200 ms target"
        print(
            f"{name:<52} median {statistics.median(values):7.1f} ms  "
            f"max {max(values):7.1f} ms  ({verdict})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
