"""A small SSE reader over httpx (frames as dicts), for tests against a real server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Frame:
    event: str
    data: Any
    id: str | None

    @property
    def seq(self) -> int:
        assert self.id is not None
        return int(self.id)


async def frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """The frames of an open SSE response (comments such as heartbeats are skipped)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in fields:
                yield Frame(
                    fields.get("event", "message"), json.loads(fields["data"]), fields.get("id")
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value


async def read_stream(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
) -> list[Frame]:
    """Every frame until the server ends the stream."""
    async with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [frame async for frame in frames(response)]
