"""A lean HTTP/1.1 load generator for W4's one-run-per-request variant.

On this 2-core machine the client shares the CPU with the API, the worker, Postgres and
Redis: httpx spends about 1.2 ms of CPU per request (building, sending and parsing), a fifth
of everything a run costs, which the service under test then lacks. This client sends the
same request (one pre-encoded `POST /workflow/run` on a kept-alive connection) and reads
the whole answer, checking its status and taking the execution id from its JSON, for a
fraction of that. It speaks only what uvicorn answers here: a status line, headers with a
`content-length`, a body."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit


class RawConnection:
    """One kept-alive connection that sends one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, base_url: str) -> RawConnection:
        parts = urlsplit(base_url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send a whole request; the answer's status and body."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
                break
        else:
            raise RuntimeError("answer without content-length: " + head.decode(errors="replace"))
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def post_json(base_url: str, path: str, payload: Any) -> bytes:
    """The bytes of `POST path` with `payload` as its JSON body."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    host = urlsplit(base_url).netloc
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body
