"""`python -m bench.starve`: can hostile expressions starve the API? /healthz latency under attack.

Starts a real API (uvicorn, its own throwaway database and Redis prefix), measures `/healthz`
alone, then while ten clients send benign immediate runs back to back (the cost of the runs
themselves), then again while ten clients send, back to back, immediate runs whose transform holds
a CPU- or memory-hungry expression. Every such run must fail its step with `expression_limit`.
Target: /healthz p99 <= 50 ms meanwhile. Numbers go to stdout; progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.services import DEFAULT_PG, DEFAULT_REDIS, Namespace, Services, bench_database
from bench.services import clear_redis as clear_namespace
from bench.stats import percentile

HOSTILE = (
    "{{ len([len(sorted('a'*9999)) for x in 'a'*9999]) }}",  # CPU: 4.7 s of /healthz before
    "{{ len(''.join(['a'*99999 for x in 'a'*9999])) }}",  # memory: 900 MB before
    "{{ [x * 2 for x in 'a'*9999 for y in 'b'*9999] }}",
    "{{ [str(sorted('ab'*4999)) for x in 'a'*9999] }}",
)
BENIGN = ("{{ 1 + 1 }}",)  # the same load without the hostile work: what the runs alone cost
TARGET_P99_MS = 50.0
Exprs = tuple[str, ...]


@dataclass
class _Load:
    """One measured phase: what the prober saw, and what the attacking runs answered."""

    healthz: list[float] = field(default_factory=list)  # ms, probes sent while runs were out
    runs: list[float] = field(default_factory=list)  # ms, POST -> answer
    codes: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0


def _probe(base: str, stop: threading.Event, load: _Load, always: bool) -> None:
    """GET /healthz every 10 ms from a thread of its own; keeps probes sent while runs are out."""
    with httpx.Client(base_url=base, timeout=30) as client:
        while not stop.is_set():
            busy = always or load.in_flight > 0
            start = time.perf_counter()
            client.get("/healthz").raise_for_status()
            if busy:
                load.healthz.append((time.perf_counter() - start) * 1000)
            stop.wait(0.01)


async def _one_run(client: httpx.AsyncClient, expression: str, load: _Load) -> None:
    workflow = {"nodes": [{"id": "t", "type": "transform", "params": {"v": expression}}]}
    load.in_flight += 1
    start = time.perf_counter()
    try:
        response = await client.post(
            "/workflow/run", json={"workflow": workflow, "mode": "immediate"}
        )
    finally:
        load.in_flight -= 1
    load.runs.append((time.perf_counter() - start) * 1000)
    body: dict[str, Any] = response.json()
    steps = body.get("steps") or [{}]
    load.codes[str((steps[0].get("error") or {}).get("code", body.get("status")))] += 1


async def _flood(
    client: httpx.AsyncClient, n: int, until: float, exprs: Exprs, load: _Load
) -> None:
    while time.monotonic() < until:  # back to back: the API is never without these runs
        await _one_run(client, exprs[n % len(exprs)], load)
        n += 1


async def _measure(base: str, seconds: float, attackers: int, pattern: str, exprs: Exprs) -> _Load:
    load = _Load()
    stop = threading.Event()
    prober = threading.Thread(target=_probe, args=(base, stop, load, attackers == 0), daemon=True)
    prober.start()
    try:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            until = time.monotonic() + seconds
            if attackers == 0:
                await asyncio.sleep(seconds)
            elif pattern == "flood":
                runs = (_flood(client, n, until, exprs, load) for n in range(attackers))
                await asyncio.gather(*runs)
            else:  # burst: `attackers` runs sent at once, then a pause, again and again
                wave = 0
                while time.monotonic() < until:
                    runs = (
                        _one_run(client, exprs[(wave + n) % len(exprs)], load)
                        for n in range(attackers)
                    )
                    await asyncio.gather(*runs)
                    wave += 1
                    await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.to_thread(prober.join)
    return load


def _row(label: str, samples: list[float]) -> str:
    if not samples:
        return f"{label:34} no samples"
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    top = max(samples)
    return f"{label:34} n={len(samples):5}  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {top:7.1f} ms"


async def run(args: argparse.Namespace) -> int:
    ns = Namespace(args.pg, args.redis)
    print(f"database {ns.database}, Redis prefix {ns.key_prefix}", file=sys.stderr)
    phases: list[tuple[str, _Load]] = []
    async with bench_database(ns):
        services = Services(ns)
        try:
            _, base = await services.start_api()
            phases.append(("idle", await _measure(base, args.seconds / 2, 0, "", ())))
            for pattern in ("burst", "flood"):
                for label, exprs in (("benign", BENIGN), ("hostile", HOSTILE)):
                    print(f"{pattern}, {label} ...", file=sys.stderr)
                    load = await _measure(base, args.seconds, args.attackers, pattern, exprs)
                    phases.append((f"{pattern}, {label}", load))
        finally:
            await services.close()
            await clear_namespace(ns)
    print(
        f"bench.starve: {args.attackers} concurrent immediate runs, {args.seconds:g} s a phase;"
        " burst = all sent at once, every 0.3 s after the last answered; flood = back to back"
    )
    for label, load in phases:
        print(_row(f"/healthz, {label}", load.healthz))
        if load.runs:
            print(_row(f"  runs: POST -> answer {dict(load.codes)}", load.runs))
    burst = dict(phases)["burst, hostile"]
    p99 = percentile(burst.healthz, 99) if burst.healthz else float("inf")
    met = p99 <= TARGET_P99_MS
    hostile = [load for label, load in phases if label.endswith("hostile")]
    only_limits = all(set(load.codes) == {"expression_limit"} for load in hostile)
    print(
        f"target: /healthz p99 <= {TARGET_P99_MS:g} ms during hostile bursts:"
        f" {'met' if met else 'NOT met'} ({p99:.1f} ms)"
    )
    print(f"every hostile run failed with expression_limit: {'yes' if only_limits else 'NO'}")
    return 0 if met and only_limits else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.starve", description=__doc__)
    parser.add_argument("--attackers", type=int, default=10, help="concurrent hostile clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the attack")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG", DEFAULT_PG))
    parser.add_argument("--redis", default=os.environ.get("BENCH_REDIS", DEFAULT_REDIS))
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
