"""What a circuit breaker decision costs: `python -m bench.circuits [REDIS_URL]`.

Times the admit and the report (a failure's, the one that writes) of the Redis store (one Lua
script each) and of the in-process store, over a few thousand calls, under a throwaway key
prefix that is deleted at the end."""

from __future__ import annotations

import asyncio
import secrets
import sys
import time

import redis.asyncio as aioredis

from app.circuits.breakers import CircuitStore
from app.circuits.local import LocalCircuits
from app.circuits.policy import CircuitPolicy
from app.circuits.redis_store import RedisCircuits

CALLS = 3_000
# Failures never reach the threshold: every report is a closed-state write.
POLICY = CircuitPolicy(failures=1_000_000, window_ms=60_000, cooldown_ms=30_000)


async def per_call_us(store: CircuitStore) -> tuple[float, float]:
    for i in range(100):  # warm up (script load, connections)
        await store.admit("bench", "warm:443", POLICY, f"w{i}", 35_000)
    started = time.perf_counter()
    for i in range(CALLS):
        await store.admit("bench", "h:443", POLICY, f"a{i}", 35_000)
    admit = (time.perf_counter() - started) / CALLS * 1e6
    started = time.perf_counter()
    for i in range(CALLS):
        await store.report("bench", "h:443", POLICY, f"r{i}", "failure")
    report = (time.perf_counter() - started) / CALLS * 1e6
    return admit, report


async def main(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    prefix = f"turnout_bench_circuits_{secrets.token_hex(4)}"
    try:
        for label, store in (("redis", RedisCircuits(client, prefix)), ("local", LocalCircuits())):
            admit, report = await per_call_us(store)
            print(f"{label}: admit {admit:.0f} us, report {report:.0f} us per call")
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0"))
