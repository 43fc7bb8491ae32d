"""`python -m bench.sinks`: what one webhook subscription costs W4, and how fast it delivers.

1. W4 (3-step queued runs/s, 1 API + 1 worker process) with no subscription, with one
   webhook subscription taking every event (`*`) to a receiver in this process, one event
   per POST, and with one such subscription batched (`batchSize` `--batch-size`: a JSON
   array per POST), alternated `--repeat` times; after each "with" window the outbox is
   drained (its time reported) and the subscription deleted, so the next window delivers
   nothing; after every window the database is vacuumed (its time reported: the clean-up
   the window left), so that no window pays for its predecessor's (autovacuum would).
   W4's clients hold off while `--w4-backlog` runs are pending (a steady state: runs are
   posted as fast as they complete; `0` posts regardless, as `python -m bench`'s W4 does).
2. Idle latency, for each kind of subscription: `--runs` immediate runs one after another
   with the subscription on; for each delivered `execution.completed` event (written by the
   run's final commit) the time from its `at` to its receipt: p50, p99 (same machine
   clock). Every event's figure is given too: a pure step's `at` precedes its batched
   commit by up to TURNOUT_CHECKPOINT_INTERVAL_MS.

The receiver is a raw asyncio HTTP/1.1 server (keep-alive, 204 to every POST), so it costs
next to nothing; Turnout's API and worker are separate processes, as in production."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from app.store.database import make_engine
from bench import client, workflows
from bench.config import SUBMITTERS_HELP, Progress, Sizes, positive
from bench.cpu import CpuMeter
from bench.report import write_results
from bench.services import DEFAULT_PG, DEFAULT_REDIS, Namespace, Services, bench_database
from bench.stats import percentile
from bench.throughput import _turnout_rate
from bench.workloads import Bench, http_client

# W4 here runs at a steady state: its clients hold off while this many runs are pending
# (bench.throughput._hold_backlog), enough that the worker never waits. Posting regardless,
# 32 clients made ~960 runs/s against 560-680 completed (2026-12-08), and the API spent a
# third of its CPU on a backlog that grew all window, out of the cores the rest needed.
W4_BACKLOG = 1000


class Receiver:
    """Records (receipt time, body) of every POST and counts its events (from
    `Turnout-Event-Count`, 1 without it); answers 204. Bodies are parsed when `received`
    is read, after the measurement: the receiver stands in for a system on another machine,
    so it costs the machine under test as little as it can."""

    def __init__(self) -> None:
        self.bodies: list[tuple[float, bytes]] = []
        self.events = 0
        self.posts = 0
        self.server: asyncio.Server | None = None
        self.url = ""

    @property
    def received(self) -> list[tuple[float, dict[str, Any]]]:
        """(receipt time, event) of every event received, in order."""
        out: list[tuple[float, dict[str, Any]]] = []
        for now, body in self.bodies:
            found = json.loads(body)
            out += [(now, event) for event in (found if isinstance(found, list) else [found])]
        return out

    def clear(self) -> None:
        self.bodies.clear()
        self.events = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, count = 0, 1
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                    elif line.lower().startswith(b"turnout-event-count:"):
                        count = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                self.bodies.append((time.time(), body))
                self.posts += 1
                self.events += count
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()


async def pending_deliveries(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT count(*) FROM event_deliveries WHERE status = 'pending'")
            )
            return int(found or 0)
    finally:
        await engine.dispose()


async def drain(database_url: str, timeout_s: float = 1800) -> float:
    """Seconds until the outbox has nothing pending."""
    t0 = time.monotonic()
    while await pending_deliveries(database_url):
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"the outbox did not drain in {timeout_s} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - t0


async def vacuum(database_url: str) -> float:
    """VACUUM (ANALYZE) the bench's database; its seconds. Run after every window, so that
    no window pays for the clean-up of the one before it (autovacuum would otherwise start
    on the outbox during the next window, whatever its kind)."""
    engine = make_engine(database_url, isolation_level="AUTOCOMMIT")
    t0 = time.monotonic()
    try:
        async with engine.connect() as conn:
            await conn.execute(text("VACUUM (ANALYZE)"))
    finally:
        await engine.dispose()
    return time.monotonic() - t0


def subscription(receiver: Receiver, batch_size: int) -> dict[str, Any]:
    return {"sink": "webhook", "url": receiver.url, "events": ["*"], "batchSize": batch_size}


async def throughput(
    b: Bench,
    receiver: Receiver,
    repeat: int,
    batch_size: int,
    p: Progress,
    only: str = "",
    backlog: int = W4_BACKLOG,
) -> dict[str, Any]:
    api = await b.api()
    worker = await b.services.start_worker("worker-sinks")
    groups: dict[str, list[int] | str] = {
        "client": [os.getpid()], "API": [b.api_pid], "worker": [worker.proc.pid],
        "Postgres": "postgres", "Redis": "redis-server",
    }  # fmt: skip
    kinds = {"per_event": 1, "batched": batch_size}
    kinds = {k: v for k, v in kinds.items() if not only or k in only.split(",")}
    cpu: dict[str, list[str]] = {kind: [] for kind in ("without", *kinds)}

    vacuums: dict[str, list[float]] = {kind: [] for kind in ("without", *kinds)}
    # Per window: runs created in its second half, and still pending at its end.
    queues: dict[str, list[dict[str, int]]] = {kind: [] for kind in ("without", *kinds)}

    async def rate(kind: str) -> float:
        meter = CpuMeter(groups)
        seen: dict[str, int] = {}
        found = await _turnout_rate(b, meter, backlog=backlog, seen=seen)
        cpu[kind].append(meter.per_unit_ms(found * b.sizes.w4_window_s / 2, "run"))
        queues[kind].append(seen)
        return found

    async def settle(kind: str) -> None:
        vacuums[kind].append(round(await vacuum(b.ns.database_url), 2))

    without: list[float] = []
    rates: dict[str, list[float]] = {kind: [] for kind in kinds}
    drains: dict[str, list[float]] = {kind: [] for kind in kinds}
    per_post: dict[str, list[float]] = {kind: [] for kind in kinds}
    try:
        async with http_client(api) as http:
            for i in range(repeat):
                p(f"W4 without a subscription {i + 1}/{repeat}")
                without.append(await rate("without"))
                await settle("without")
                for kind, size in kinds.items():
                    made = await http.post("/subscriptions", json=subscription(receiver, size))
                    made.raise_for_status()
                    await asyncio.sleep(1.5)  # every process has reloaded its subscriptions
                    p(f"W4 with one webhook subscription, {kind} {i + 1}/{repeat}")
                    posts, events = receiver.posts, receiver.events
                    rates[kind].append(await rate(kind))
                    drains[kind].append(round(await drain(b.ns.database_url), 2))
                    await settle(kind)
                    per_post[kind].append(
                        round((receiver.events - events) / max(1, receiver.posts - posts), 1)
                    )
                    (await http.delete(f"/subscriptions/{made.json()['id']}")).raise_for_status()
                    await asyncio.sleep(1.5)
    finally:
        await b.services.stop(worker)
    base = statistics.median(without)
    return {
        "without_runs_per_s": without,
        "batch_size": batch_size,
        **{f"with_webhook_{kind}_runs_per_s": rates[kind] for kind in kinds},
        **{
            f"slowdown_{kind}_pct": round((1 - statistics.median(rates[kind]) / base) * 100, 1)
            for kind in kinds
        },
        **{f"drain_after_window_{kind}_s": drains[kind] for kind in kinds},
        "vacuum_after_window_s": vacuums,
        **{f"events_per_post_{kind}": per_post[kind] for kind in kinds},
        "webhook_events_received": receiver.events,
        "cpu": cpu,
        "w4_backlog_cap": backlog,
        "created_and_pending": queues,
    }


async def latency(
    b: Bench, receiver: Receiver, runs: int, batch_size: int, p: Progress
) -> dict[str, Any]:
    api = await b.api()
    worker = await b.services.start_worker(f"worker-latency-{batch_size}")
    receiver.clear()
    workflow = workflows.three_steps("bench-sinks")
    try:
        async with http_client(api) as http:
            made = await http.post("/subscriptions", json=subscription(receiver, batch_size))
            made.raise_for_status()
            await asyncio.sleep(1.5)
            p(f"{runs} immediate runs, one at a time (batchSize {batch_size})")
            for _ in range(runs):
                await client.run_immediate(http, workflow)
                await asyncio.sleep(0.02)
            await drain(b.ns.database_url)
            await asyncio.sleep(0.2)
            (await http.delete(f"/subscriptions/{made.json()['id']}")).raise_for_status()
    finally:
        await b.services.stop(worker)
    received = receiver.received
    final = [(seen - _at(e)) * 1000 for seen, e in received if e["type"] == "execution.completed"]
    every = [(seen - _at(e)) * 1000 for seen, e in received]

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "p50": round(statistics.median(values), 1),
            "p99": round(percentile(values, 99), 1),
            "max": round(max(values), 1),
        }

    return {
        "runs": runs,
        "batch_size": batch_size,
        "events": len(every),
        "commit_to_receipt_ms": summary(final),
        "every_event_at_to_receipt_ms": summary(every),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    progress = Progress()
    ns = Namespace(args.pg, args.redis)
    receiver = Receiver()
    await receiver.start()
    results: dict[str, Any] = {"load": os.getloadavg()}
    async with bench_database(ns):
        services = Services(ns)
        sizes = Sizes.for_mode(args.quick, args.repeat, args.w4_submitters)
        bench = Bench(ns, services, sizes, progress)
        results["w4_clients"] = sizes.w4_submitters
        try:
            os.environ["TURNOUT_HTTP_ALLOW_PRIVATE"] = "true"  # the receiver is on 127.0.0.1
            results["w4"] = await throughput(
                bench,
                receiver,
                sizes.repeat,
                args.batch_size,
                progress,
                args.kinds,
                args.w4_backlog,
            )
            progress(json.dumps(results["w4"]))
            for size in (1, args.batch_size) if args.runs else ():
                results[f"latency_batch_{size}"] = await latency(
                    bench, receiver, args.runs, size, progress
                )
                progress(json.dumps(results[f"latency_batch_{size}"]))
        finally:
            await services.close()
            await receiver.close()
    results["load_after"] = os.getloadavg()
    return results


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sinks", description=__doc__)
    parser.add_argument("--repeat", type=int, default=None, help="W4 windows of each kind")
    parser.add_argument("--runs", type=int, default=200, help="immediate runs for latency")
    parser.add_argument("--batch-size", type=int, default=100, help="the batched subscription's")
    parser.add_argument("--quick", action="store_true", help="5 s windows, one repeat")
    parser.add_argument("--kinds", default="", help="per_event,batched (default: both)")
    parser.add_argument("--w4-submitters", type=positive, help=SUBMITTERS_HELP)
    parser.add_argument(
        "--w4-backlog",
        type=int,
        default=W4_BACKLOG,
        help=f"W4's clients hold off while this many runs are pending (default {W4_BACKLOG}; "
        "0: they post regardless, the backlog growing all window)",
    )
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = asyncio.run(main(args))
    write_results(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
