"""The DBOS peer's service, run by `bench.peers` in `.venv-peers` (imports nothing from
Turnout): DBOS durable workflows inside a FastAPI app served by uvicorn, one process, its
system database on the bench's Postgres (a database of its own).

    python bench/peer_dbos_app.py PORT SYSTEM_DATABASE_URL

Routes (the bench's client calls them over HTTP, as it calls Turnout's API):
- `POST /w1`: the 3-step workflow run inside the handler, answered with its result;
- `POST /w2/{queue}`: the 3-step workflow enqueued on `default` (DBOS's default polling,
  1 s for the queue and for `get_result`) or `tuned` (2 ms for both, Turnout's worker poll
  delay), answered once `get_result` returns it;
- `POST /w3`: 40 sequential fib(10) steps, enqueued on `tuned`, answered with the result;
- `POST /submit`: the 3-step workflow enqueued on `tuned`, answered with its id at once (W4:
  the bench counts completions in `dbos.workflow_status`).
Every step is a `@DBOS.step()`, checkpointed in Postgres before the next one starts."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from dbos import DBOS, DBOSConfig, Queue
from fastapi import FastAPI, HTTPException

TUNED_S = 0.002  # Turnout's TURNOUT_WORKER_POLL_DELAY_MS
DEFAULT_S = 1.0  # DBOS's default queue polling and get_result polling


def fib(n: int) -> int:
    return n if n <= 1 else fib(n - 1) + fib(n - 2)


@DBOS.step()
async def add_one(x: int) -> int:
    return x + 1


@DBOS.step()
async def fib_step(n: int) -> int:
    return fib(n)


@DBOS.workflow()
async def three_steps(x: int) -> int:
    return await add_one(await add_one(await add_one(x)))


@DBOS.workflow()
async def forty_steps(n: int) -> int:
    value = 0
    for _ in range(40):
        value = await fib_step(n)
    return value


def build(system_database_url: str) -> FastAPI:
    config: DBOSConfig = {
        "name": "turnout-bench-peer",
        "system_database_url": system_database_url,
        "log_level": "WARNING",
        "sys_db_pool_size": 40,
    }
    DBOS(config=config)
    polling = {"default": DEFAULT_S, "tuned": TUNED_S}
    queues: dict[str, Queue] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        DBOS.launch()
        for name, interval in polling.items():
            queues[name] = await DBOS.register_queue_async(name, polling_interval_sec=interval)
        yield
        DBOS.destroy()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/w1")
    async def w1() -> dict[str, Any]:
        return {"result": await three_steps(1)}

    @app.post("/w2/{queue}")
    async def w2(queue: str) -> dict[str, Any]:
        if queue not in polling:
            raise HTTPException(404, f"no queue {queue!r}")
        handle = await queues[queue].enqueue_async(three_steps, 1)
        return {"result": await handle.get_result(polling_interval_sec=polling[queue])}

    @app.post("/w3")
    async def w3() -> dict[str, Any]:
        handle = await queues["tuned"].enqueue_async(forty_steps, 10)
        return {"result": await handle.get_result(polling_interval_sec=TUNED_S)}

    @app.post("/submit")
    async def submit() -> dict[str, Any]:
        handle = await queues["tuned"].enqueue_async(three_steps, 1)
        return {"workflowId": handle.get_workflow_id()}

    return app


def main() -> None:
    port, url = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(build(url), host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
