"""A real webhook receiver on 127.0.0.1: records every POST, and fails on purpose when told."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.servers import run_server


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived

    @property
    def event(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def event_id(self) -> str:
        return self.headers["turnout-event-id"]


@dataclass
class Receiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)  # the 2xx ones
    attempts: int = 0  # every POST, answered 2xx or not
    fail_first: int = 0  # answer 500 to this many POSTs first
    fail_at: set[int] = field(default_factory=set)  # and to these POSTs (1 is the first)
    status: int = 200  # the answer after those
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def by_execution(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        with self.lock:
            for r in self.received:
                out.setdefault(r.event["executionId"], []).append(r.event["seq"])
        return out

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        with self.lock:
            self.attempts += 1
            failed = self.attempts <= self.fail_first or self.attempts in self.fail_at
            if failed or not 200 <= self.status < 300:
                return Response("nope", status_code=500 if failed else self.status)
            self.received.append(
                Received({k.lower(): v for k, v in request.headers.items()}, body, time.time())
            )
        return Response(status_code=204)


@contextmanager
def webhook_receiver(**options: Any) -> Iterator[Receiver]:
    receiver = Receiver(**options)
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    with run_server(app, lifespan="off") as url:
        receiver.url = f"{url}/hook"
        yield receiver
