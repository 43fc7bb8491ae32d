"""CPU per run by process: create queued 3-step runs, then let one worker drain them.

    python -m bench.drain --mode single --runs 1000   # one run per request, 8 clients
    python -m bench.drain --mode bulk --runs 1000     # POST /workflow/runs, 100 a request
    python -m bench.drain --subscription batched      # and one webhook subscription (`*`)

With `--subscription`, one webhook subscription takes every event to a receiver in this
process (`bench.sinks.Receiver`), one per POST (`per-event`) or in arrays of up to
`--batch-size` (`batched`), and the drain ends once the outbox is empty too: the CPU a run
costs with its deliveries, beside the same figures without (`none`). Unlike W4's windows,
the work measured is the same from run to run, so two versions compare within a few %.

CPU comes from /proc; Postgres counts only the backends of the bench's own database, so
what other tenants of a shared server run is not in it (unlike W4's Postgres note). Run it
from another checkout (cwd) to compare two versions on the same machine in the same hour."""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from app.store.database import make_engine
from bench import workflows
from bench.cpu import cpu_seconds
from bench.services import (
    DEFAULT_PG,
    DEFAULT_REDIS,
    Namespace,
    Services,
    bench_database,
)
from bench.sinks import Receiver, pending_deliveries, subscription

BULK_SIZE = 100


def database_pids(database: str) -> list[int]:
    """The Postgres backends connected to `database` (its name is in their title)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if database in (entry / "cmdline").read_text():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def database_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of each backend of `database`: a backend that connects later counts
    from 0, so a window's figure is the sum of differences over the backends at its end."""
    return {pid: cpu_seconds([pid]) for pid in database_pids(database)}


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


async def _create(client: httpx.AsyncClient, mode: str, runs: int) -> None:
    run = {"workflow": workflows.three_steps(), "input": {"x": 1}, "mode": "queued"}
    if mode == "bulk":
        limit = asyncio.Semaphore(2)

        async def post_many() -> None:
            async with limit:
                answer = await client.post("/workflow/runs", json={"runs": [run] * BULK_SIZE})
                answer.raise_for_status()

        await asyncio.gather(*(post_many() for _ in range(runs // BULK_SIZE)))
        return
    limit = asyncio.Semaphore(8)

    async def post_one() -> None:
        async with limit:
            (await client.post("/workflow/run", json=run)).raise_for_status()

    await asyncio.gather(*(post_one() for _ in range(runs)))


async def _completed(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            query = text("SELECT count(*) FROM workflow_executions WHERE status = 'completed'")
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def _drained(database_url: str, total: int, outbox: bool = False) -> None:
    """Return once `total` runs are completed and, with `outbox`, nothing waits in it
    (polled every 50 ms)."""
    while True:
        if await _completed(database_url) >= total and not (
            outbox and await pending_deliveries(database_url)
        ):
            return
        await asyncio.sleep(0.05)


async def measure(
    mode: str, runs: int, pg: str, redis: str, sink: str = "none", batch_size: int = 100
) -> str:
    ns = Namespace(pg, redis)
    receiver = Receiver()
    await receiver.start()
    outbox = sink != "none"
    async with bench_database(ns):
        services = Services(ns)
        try:
            env = ns.env(TURNOUT_HTTP_ALLOW_PRIVATE="true")  # the receiver is on 127.0.0.1
            api, url = await services.start_api(env=env)
            worker = await services.start_worker("worker-drain", env=env)
            async with httpx.AsyncClient(base_url=url, timeout=120) as client:
                if outbox:
                    size = batch_size if sink == "batched" else 1
                    made = await client.post("/subscriptions", json=subscription(receiver, size))
                    made.raise_for_status()
                    await asyncio.sleep(1.5)  # the worker has loaded it
                await _create(client, "single", 20)  # warm up both
                await _drained(ns.database_url, 20, outbox)
                posts, events = receiver.posts, receiver.events
                # The worker is stopped (SIGSTOP) while the backlog is made, so that it drains
                # a full queue and its start-up is not in the measurement.
                worker.proc.send_signal(signal.SIGSTOP)
                pg0, api0, t0 = (
                    database_cpu(ns.database),
                    cpu_seconds([api.proc.pid]),
                    time.monotonic(),
                )
                await _create(client, mode, runs)
                pg1, api1, t1 = (
                    database_cpu(ns.database),
                    cpu_seconds([api.proc.pid]),
                    time.monotonic(),
                )
            w0, pg2, t2 = (
                cpu_seconds([worker.proc.pid]),
                database_cpu(ns.database),
                time.monotonic(),
            )
            worker.proc.send_signal(signal.SIGCONT)
            await _drained(ns.database_url, runs + 20, outbox)
            w1, pg3, t3 = (
                cpu_seconds([worker.proc.pid]),
                database_cpu(ns.database),
                time.monotonic(),
            )
        finally:
            await services.close()
            await receiver.close()
    delivered = ""
    if outbox:
        n = receiver.events - events
        delivered = f"; {n} events delivered in {receiver.posts - posts} POSTs"
    return (
        f"{mode}: created {runs} runs at {runs / (t1 - t0):.0f}/s, API CPU "
        f"{1000 * (api1 - api0) / runs:.2f} ms/run, Postgres {1000 * spent(pg0, pg1) / runs:.2f} "
        f"ms/run; drained at {runs / (t3 - t2):.0f}/s, worker CPU "
        f"{1000 * (w1 - w0) / runs:.2f} ms/run, Postgres "
        f"{1000 * spent(pg2, pg3) / runs:.2f} ms/run{delivered}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.drain", description=__doc__)
    parser.add_argument("--mode", choices=("single", "bulk"), default="single")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument(
        "--subscription", choices=("none", "per-event", "batched"), default="none",
        help="one webhook subscription taking every event, to a receiver in this process",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=100, help="the batched one's")
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    args = parser.parse_args()
    found = measure(args.mode, args.runs, args.pg, args.redis, args.subscription, args.batch_size)
    print(asyncio.run(found))


if __name__ == "__main__":
    main()
