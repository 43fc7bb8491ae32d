"""Helpers of the observability tests: a CPU-bound plugin and a local HTTP peer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from pydantic import BaseModel

from app.nodes.base import BaseNode, NodeContext, Params
from tests.servers import run_server


class BurnParams(Params):
    ms: int = 200


class BurnNode(BaseNode):
    """Spins on the CPU for `ms` of wall time (no await); returns the share of that time the
    OS let its thread run (`share`: 1.0 on an idle machine)."""

    name: ClassVar[str] = "test.burn"
    params_model: ClassVar[type[BaseModel]] = BurnParams

    async def run(self, ctx: NodeContext, params: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        end = wall + params.ms / 1000
        spins = 0
        while time.perf_counter() < end:
            spins += 1
        share = (time.thread_time() - cpu) / (time.perf_counter() - wall)
        return {"spins": spins % 10, "share": round(share, 3)}


@contextmanager
def slow_peer(seconds: float) -> Iterator[str]:
    """A local HTTP peer that answers `GET /slow` after `seconds`."""
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(seconds)
        return {"ok": True}

    with run_server(app, lifespan="off") as url:
        yield url


@contextmanager
def echo_peer() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A local HTTP peer answering 64 bytes; yields its URL and the headers it received."""
    seen: list[dict[str, str]] = []
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, str]:
        seen.append(dict(request.headers))
        await request.body()
        return {"pad": "x" * 54}  # {"pad":"x...x"} is 64 bytes

    with run_server(app, lifespan="off") as url:
        yield url, seen
