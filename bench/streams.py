"""`python -m bench.streams`: how many open SSE streams one API process holds, and how fast
events reach them.

1. Idle: N streams (default 10,000) of N pending executions held open on one API process
   (heartbeats on); meanwhile `/healthz` latency, and the process's memory per stream.
2. Delivery: M streams (default 1,000) of M pending executions; one worker then runs them
   all; for every live event, the time from its commit (`at`, same machine clock) to the
   moment the client read it: p50, p99.

Clients are raw asyncio sockets in this process (an httpx client per stream would measure
httpx). The API and worker are separate processes, as in production."""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from arq import create_pool

from app.engine.status import Status
from app.execution.queue import ArqQueue
from app.store.database import make_engine
from app.store.records import NewExecution
from app.store.repository import Repository
from bench.config import Progress
from bench.report import write_results
from bench.services import DEFAULT_PG, DEFAULT_REDIS, Namespace, Services, bench_database
from bench.stats import percentile

ONE_STEP = {"name": "stream-bench", "nodes": [{"id": "a", "type": "transform", "params": {}}]}


def raise_fd_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, wanted))
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


async def create_pending(database_url: str, count: int) -> list[uuid.UUID]:
    """`count` committed pending executions (no jobs: nothing runs until asked)."""
    engine = make_engine(database_url, pool_size=8, max_overflow=0)
    repo = Repository(engine)
    ids: list[uuid.UUID] = []

    async def one() -> None:
        new = NewExecution(
            id=uuid.uuid4(), workflow_name="stream-bench", workflow_id=None,
            workflow_version=None, status=Status.PENDING, execution_mode="queued",
            requested_mode="queued", input={}, definition=ONE_STEP, complexity=None,
            progress_total=1,
        )  # fmt: skip
        record, _ = await repo.create_execution(new, [("execution.created", {})])
        ids.append(record.id)

    try:
        for start in range(0, count, 200):
            await asyncio.gather(*(one() for _ in range(min(200, count - start))))
    finally:
        await engine.dispose()
    return ids


class Stream:
    """One SSE connection on a raw socket; records (receive time, event) of each frame."""

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.opened = asyncio.Event()
        self.ended = asyncio.Event()

    async def open(self, base: str, execution_id: uuid.UUID) -> None:
        url = urlsplit(base)
        self.reader, self.writer = await asyncio.open_connection(url.hostname, url.port)
        self.writer.write(
            f"GET /execution/{execution_id}/stream HTTP/1.1\r\nHost: {url.netloc}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await self.writer.drain()

    async def read(self) -> None:
        assert self.reader is not None
        try:
            while line := await self.reader.readline():
                if line.startswith(b"data: {"):
                    event = json.loads(line[6:])
                    self.received.append((time.time(), event))
                    self.opened.set()
                    if event.get("type") in ("execution.completed", "execution.failed"):
                        break
        finally:
            self.opened.set()
            self.ended.set()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def open_streams(
    base: str, ids: list[uuid.UUID], progress: Progress
) -> tuple[list[Stream], list[asyncio.Task[None]]]:
    streams = [Stream() for _ in ids]
    tasks: list[asyncio.Task[None]] = []
    for n in range(0, len(ids), 250):
        batch = list(zip(streams[n : n + 250], ids[n : n + 250], strict=True))
        await asyncio.gather(*(s.open(base, i) for s, i in batch))
        tasks += [asyncio.create_task(s.read()) for s, _ in batch]
        await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s, _ in batch)), 120)
        if (n + 250) % 2000 == 0:
            progress(f"{n + 250} streams open")
    return streams, tasks


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def healthz_latencies(base: str, count: int) -> list[float]:
    out = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for _ in range(count):
            start = time.perf_counter()
            response = await client.get("/healthz")
            out.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
            await asyncio.sleep(0.01)
    return out


async def idle(
    ns: Namespace, services: Services, count: int, hold_s: float, p: Progress
) -> dict[str, Any]:
    proc, base = await services.start_api("api-idle")
    before_ms = await healthz_latencies(base, 100)
    ids = await create_pending(ns.database_url, count)
    p(f"{count} pending executions created")
    rss_before = rss_kib(proc.proc.pid)
    streams, tasks = await open_streams(base, ids, p)
    p(f"holding {count} streams for {hold_s:.0f} s (heartbeats every 15 s)")
    during_ms = await healthz_latencies(base, int(hold_s / 0.0125))
    rss_after = rss_kib(proc.proc.pid)
    alive = sum(1 for t in tasks if not t.done())
    for s in streams:
        s.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    await services.stop(proc)
    return {
        "streams": count,
        "still_open": alive,
        "healthz_ms_idle_server": {
            "p50": statistics.median(before_ms),
            "p99": percentile(before_ms, 99),
        },
        "healthz_ms_with_streams": {
            "p50": statistics.median(during_ms),
            "p99": percentile(during_ms, 99),
        },
        "rss_mib_before": rss_before / 1024,
        "rss_mib_after": rss_after / 1024,
        "kib_per_stream": (rss_after - rss_before) / count,
    }


async def delivery(ns: Namespace, services: Services, count: int, p: Progress) -> dict[str, Any]:
    proc, base = await services.start_api("api-delivery")
    ids = await create_pending(ns.database_url, count)
    streams, tasks = await open_streams(base, ids, p)
    opened_at = time.time()

    from app.config import Settings
    from app.execution.queue import redis_settings

    settings = Settings(
        DATABASE_URL=ns.database_url, REDIS_URL=ns.redis_url, queue_name=ns.queue_name
    )
    pool = await create_pool(redis_settings(settings))
    queue = ArqQueue(pool, ns.queue_name)
    worker = await services.start_worker("worker-delivery")
    p(f"{count} streams open; running their executions")
    for execution_id in ids:
        await queue.enqueue(execution_id)
    await pool.aclose()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 300)
    latencies = [
        (seen - datetime.fromisoformat(e["at"].replace("Z", "+00:00")).timestamp()) * 1000
        for s in streams
        for seen, e in s.received
        if datetime.fromisoformat(e["at"].replace("Z", "+00:00")).timestamp() > opened_at
    ]
    completed = sum(
        1 for s in streams if s.received and s.received[-1][1]["type"] == "execution.completed"
    )
    for s in streams:
        s.close()
    await services.stop(worker)
    await services.stop(proc)
    return {
        "streams": count,
        "completed_seen": completed,
        "live_events": len(latencies),
        "delivery_ms": {
            "p50": statistics.median(latencies),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": max(latencies),
        },
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    progress = Progress()
    limit = raise_fd_limit(args.streams * 2 + 1000)  # inherited by the API process
    progress(f"open files limit {limit}")
    ns = Namespace(args.pg, args.redis)
    results: dict[str, Any] = {}
    async with bench_database(ns):
        services = Services(ns)
        try:
            results["idle"] = await idle(ns, services, args.streams, args.hold, progress)
            progress(json.dumps(results["idle"]))
            results["delivery"] = await delivery(ns, services, args.delivery, progress)
            progress(json.dumps(results["delivery"]))
        finally:
            await services.close()
    return results


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streams", description=__doc__)
    parser.add_argument("--streams", type=int, default=10_000, help="idle streams to hold")
    parser.add_argument("--hold", type=float, default=20.0, help="seconds to hold them")
    parser.add_argument("--delivery", type=int, default=1_000, help="streams for delivery")
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = asyncio.run(main(args))
    write_results(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
