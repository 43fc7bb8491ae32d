"""`python -m bench.idle`: what an idle worker costs (CPU, its own and Redis's).

Starts one worker of this checkout (cwd) with the bench's processes' settings, lets its
startup settle, then reads its and the Redis server's CPU over `--seconds` with nothing
queued (Redis's share includes whatever else uses that server). Run it from another
checkout to compare two versions."""

from __future__ import annotations

import argparse
import asyncio
import json

from bench.cpu import CpuMeter
from bench.services import (
    DEFAULT_PG,
    DEFAULT_REDIS,
    Namespace,
    Services,
    bench_database,
)


async def measure(pg: str, redis: str, seconds: float) -> dict[str, float]:
    ns = Namespace(pg, redis)
    async with bench_database(ns):
        services = Services(ns)
        try:
            worker = await services.start_worker("idle")
            await asyncio.sleep(3.0)  # startup's own work done
            meter = CpuMeter({"worker": [worker.proc.pid], "Redis": "redis-server"})
            meter.start()
            await asyncio.sleep(seconds)
            meter.stop()
            used = meter.used
        finally:
            await services.close()
    return {f"{name} % of a core": round(s / seconds * 100, 1) for name, s in used.items()}


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(measure(args.pg, args.redis, args.seconds))))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
