"""A small keep-alive HTTP/1.1 client for webhooks: asyncio streams and h11, nothing more.

Profiling the worker in `python -m bench.sinks` put a third of its CPU in httpx/httpcore
(request building, the connection pool's bookkeeping, trace hooks) and 1 % in h11, the
parser underneath. A webhook is always the same thing (one POST with a small body, the
start of the answer kept), so it goes through this instead:

- connections are pooled per origin (scheme, host, port) and kept `KEEPALIVE_S` idle;
- the SSRF guard checks the peer address of every new TCP connection before a byte is
  sent on it (TLS hello included: `start_tls` comes after the check), as httpx's trace
  hook did;
- https verifies the certificate and host name with certifi's roots, as httpx does;
- redirects are never followed (a 3xx is an answer like any other);
- a pooled connection that turns out closed before any answer came is retried once on a
  new one (the receiver closed it while idle); the event id is the same either way."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from functools import lru_cache

import certifi
import h11
import httpx

from app.nodes.ssrf import AddressGuard, blocked_error, parse_ip

DEFAULT_PORTS = {"http": 80, "https": 443}
KEEPALIVE_S = 5.0
MAX_IDLE_PER_ORIGIN = 20
READ_CHUNK = 65_536
# Answers up to this size are read to their end (the connection is kept); a longer one
# closes the connection once its start is read.
DRAIN_BYTES = 65_536

Origin = tuple[str, str, int]


class ConnectError(OSError):
    """The connection could not be made (refused, unreachable, TLS refused); named as
    httpx named it, so a delivery's `lastError` reads as before."""


class StaleConnection(Exception):
    """A pooled connection was closed by the other side before it answered."""


@dataclass(frozen=True, slots=True)
class Target:
    origin: Origin
    host: str  # what is connected to, and checked (IDNA-encoded; an IPv6 one unbracketed)
    host_header: bytes
    path: bytes


@lru_cache(maxsize=1024)
def parse_target(url: str) -> Target:
    """The parts of a webhook URL a request needs (parsed once per URL)."""
    parsed = httpx.URL(url)
    if parsed.scheme not in DEFAULT_PORTS or not parsed.raw_host:
        raise httpx.InvalidURL(f"not an http(s) URL: {url!r}")
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    shown = f"[{host}]" if ":" in host else host
    if parsed.port is not None:
        shown = f"{shown}:{port}"
    return Target((parsed.scheme, host, port), host, shown.encode("ascii"), parsed.raw_path)


@dataclass(eq=False, slots=True)
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    h11: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    idle_since: float = 0.0
    reused: bool = False
    reusable: bool = True  # False once an answer was left unread

    def close(self) -> None:
        self.writer.close()


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    head: bytes  # the start of the body


class Http1Client:
    def __init__(
        self, guard: AddressGuard, user_agent: str, tls: ssl.SSLContext | None = None
    ) -> None:
        self.guard = guard
        self.user_agent = user_agent.encode()
        self.idle: dict[Origin, list[Connection]] = {}
        self._tls = tls  # certifi's roots unless given (tests give their own CA)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=certifi.where())
        return self._tls

    async def _open(self, target: Target) -> Connection:
        scheme, host, port = target.origin
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            raise ConnectError(str(exc) or type(exc).__name__) from exc
        try:
            if not self.guard.allowlist.allows_host(host):
                peer = writer.get_extra_info("peername")
                addr = parse_ip(str(peer[0])) if isinstance(peer, tuple) and peer else None
                if addr is None:
                    raise blocked_error(host, "unknown", "the peer address cannot be checked")
                self.guard.check(host, addr)  # rebinding: the address actually reached
            if scheme == "https":
                try:
                    await writer.start_tls(self._tls_context(), server_hostname=host)
                except OSError as exc:  # ssl.SSLError included
                    raise ConnectError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            writer.close()
            raise
        return Connection(reader, writer)

    def _take(self, origin: Origin) -> Connection | None:
        pool = self.idle.get(origin)
        now = asyncio.get_running_loop().time()
        while pool:
            conn = pool.pop()
            if now - conn.idle_since < KEEPALIVE_S and not conn.reader.at_eof():
                conn.reused = True
                return conn
            conn.close()
        return None

    def _give_back(self, origin: Origin, conn: Connection) -> None:
        done = conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE
        if conn.reusable and done:
            conn.h11.start_next_cycle()
            pool = self.idle.setdefault(origin, [])
            if len(pool) < MAX_IDLE_PER_ORIGIN:
                conn.idle_since = asyncio.get_running_loop().time()
                pool.append(conn)
                return
        conn.close()

    async def post(
        self, url: str, headers: list[tuple[bytes, bytes]], body: bytes, head_bytes: int
    ) -> Answer:
        """POST `body`; the status and up to `head_bytes` of the answer. Raises OSError,
        h11.ProtocolError, asyncio.IncompleteReadError or the guard's StepError."""
        target = parse_target(url)
        conn = self._take(target.origin)
        if conn is not None:
            try:
                return await self._exchange(target, conn, headers, body, head_bytes)
            except StaleConnection:
                pass  # closed while idle: once more on a new connection
        conn = await self._open(target)
        try:
            return await self._exchange(target, conn, headers, body, head_bytes)
        except StaleConnection as exc:
            raise ConnectionResetError("the connection was closed before an answer") from exc

    async def _exchange(
        self,
        target: Target,
        conn: Connection,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        head_bytes: int,
    ) -> Answer:
        keep = False
        try:
            request = h11.Request(
                method="POST",
                target=target.path,
                headers=[
                    (b"host", target.host_header),
                    (b"user-agent", self.user_agent),
                    (b"content-length", str(len(body)).encode()),
                    *headers,
                ],
            )
            out = conn.h11
            conn.writer.write(out.send(request) + out.send(h11.Data(data=body)))
            conn.writer.write(out.send(h11.EndOfMessage()))
            await conn.writer.drain()
            answer = await self._read(conn, head_bytes)
            keep = True
            return answer
        except (ConnectionError, asyncio.IncompleteReadError, h11.RemoteProtocolError) as exc:
            if conn.reused and conn.h11.their_state is h11.SEND_RESPONSE:
                raise StaleConnection() from exc
            raise
        finally:
            if keep:
                self._give_back(target.origin, conn)
            else:
                conn.close()

    async def _read(self, conn: Connection, head_bytes: int) -> Answer:
        status = 0
        head = b""
        size = 0
        while True:
            event = conn.h11.next_event()
            if event is h11.NEED_DATA:
                data = await conn.reader.read(READ_CHUNK)
                if not data and conn.h11.their_state is h11.SEND_RESPONSE:
                    raise ConnectionResetError("closed before an answer")
                conn.h11.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                if len(head) < head_bytes:
                    head += bytes(event.data[: head_bytes - len(head)])
                size += len(event.data)
                if size > DRAIN_BYTES:  # not worth reading on: the connection goes
                    conn.reusable = False
                    return Answer(status, head)
            elif isinstance(event, h11.EndOfMessage):
                return Answer(status, head)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError("closed mid-answer")
            # h11.InformationalResponse (1xx): the real answer follows

    async def close(self) -> None:
        pools, self.idle = self.idle, {}
        for pool in pools.values():
            for conn in pool:
                conn.close()
