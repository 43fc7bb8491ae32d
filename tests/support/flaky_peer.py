"""A real HTTP peer on 127.0.0.1 that fails until told otherwise, counting what reaches it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from fastapi import FastAPI, Response
from fastapi.responses import PlainTextResponse

from tests.servers import run_server


@dataclass
class FlakyPeer:
    """`GET /call` answers `status` (503 while failing) after `delay_s`; `hits` counts calls.
    Tests in other processes steer it over HTTP: `POST /control?status=200`, `GET /hits`."""

    status: int = 503
    delay_s: float = 0.0
    hits: int = 0
    url: str = ""
    app: FastAPI = field(default_factory=FastAPI)

    def __post_init__(self) -> None:
        @self.app.get("/call")
        async def call() -> Response:
            self.hits += 1
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return PlainTextResponse(f"status {self.status}", status_code=self.status)

        @self.app.get("/hits")
        async def hits() -> dict[str, int]:
            return {"hits": self.hits}


@contextlib.contextmanager
def flaky_peer() -> Iterator[FlakyPeer]:
    peer = FlakyPeer()
    with run_server(peer.app) as url:
        peer.url = url
        yield peer
