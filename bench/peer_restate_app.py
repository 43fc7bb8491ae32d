"""The Restate peer's service, run by `bench.peer_restate` in `.venv-peers` (imports nothing
from Turnout): the Restate Python SDK's ASGI app, served by hypercorn; the `restate-server`
binary calls it, journaling every `ctx.run` before the handler goes on.

    python -m hypercorn --bind 127.0.0.1:PORT peer_restate_app:app   (with bench/ on the path)

Handlers of the service `bench`: `three_steps` (3 `ctx.run` steps adding one) and
`forty_steps` (40 sequential `ctx.run` steps, each fib(10)). `GET /stats` (not Restate's:
answered beside the SDK's app) gives the wall-clock times at which `three_steps` handlers
reached their end, for W4's count of completions in a window."""

from __future__ import annotations

import json
import time
from typing import Any

import restate

service = restate.Service("bench")
completions: list[float] = []


def fib(n: int) -> int:
    return n if n <= 1 else fib(n - 1) + fib(n - 2)


async def add_one(x: int) -> int:
    return x + 1


async def fib_step(n: int) -> int:
    return fib(n)


@service.handler()
async def three_steps(ctx: restate.Context, x: int) -> int:
    for _ in range(3):
        x = await ctx.run_typed("add_one", add_one, x=x)
    completions.append(time.time())
    return x


@service.handler()
async def forty_steps(ctx: restate.Context, n: int) -> int:
    value = 0
    for _ in range(40):
        value = await ctx.run_typed("fib", fib_step, n=n)
    return value


restate_app = restate.app(services=[service])


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"] == "/stats":
        body = json.dumps({"completions": completions}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await restate_app(scope, receive, send)
