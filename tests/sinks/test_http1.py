"""The webhook sink's own HTTP/1.1 client, against real servers on 127.0.0.1 (plain and TLS)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.nodes.ssrf import AddressGuard
from app.sinks.base import Message
from app.sinks.signing import verify
from app.sinks.webhook import WebhookSink
from app.store.subscriptions import SubscriptionRecord

OPEN = AddressGuard(allow_private=True)
Handler = Callable[["Server", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Server:
    """A raw HTTP/1.1 server: counts connections, records requests, answers as told."""

    handler: Handler
    connections: int = 0
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)  # (head, body)
    url: str = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(self, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        return body


@asynccontextmanager
async def serving(
    handler: Handler, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[Server]:
    server = Server(handler)
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0, ssl=tls)
    port = listening.sockets[0].getsockname()[1]
    server.url = f"{'https' if tls else 'http'}://{host}:{port}/hook?x=1"
    try:
        yield server
    finally:
        listening.close()
        await listening.wait_closed()


async def answer_204(
    server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    while True:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()


def subscription(url: str) -> SubscriptionRecord:
    now = dt.datetime.now(dt.UTC)
    return SubscriptionRecord(
        uuid4(), "default", "webhook", url, None, ["*"], None, None, None, "active", now, now
    )


def message(seq: int = 1) -> Message:
    return Message(uuid4(), seq, "step.completed", b'{"seq": %d}' % seq)


async def test_posts_are_signed_and_share_one_kept_alive_connection() -> None:
    async with serving(answer_204) as server:
        sink = WebhookSink(OPEN, 5_000)
        try:
            outcomes = [
                await sink.send(subscription(server.url), "whsec_test", message(i))
                for i in range(1, 6)
            ]
        finally:
            await sink.close()
    assert [(o.ok, o.status) for o in outcomes] == [(True, 204)] * 5
    assert server.connections == 1
    head, body = server.requests[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /hook?x=1 HTTP/1.1"
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
    assert headers["host"] == server.url.split("/")[2]
    assert headers["content-type"] == "application/json"
    assert headers["turnout-event-id"].endswith(":1")
    assert verify("whsec_test", headers["turnout-signature"], body)
    assert not verify("whsec_other", headers["turnout-signature"], body)


async def test_a_connection_the_receiver_closed_while_idle_is_replaced() -> None:
    async def one_per_connection(
        server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:  # keep-alive announced, then closed anyway
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()

    async with serving(one_per_connection) as server:
        sink = WebhookSink(OPEN, 5_000)
        try:
            outcomes = []
            for i in range(1, 4):
                outcomes.append(await sink.send(subscription(server.url), None, message(i)))
                await asyncio.sleep(0.05)  # the close has arrived
        finally:
            await sink.close()
    assert [o.ok for o in outcomes] == [True, True, True]
    assert len(server.requests) == 3 and server.connections == 3


async def test_redirects_are_failures_and_the_answer_start_is_kept() -> None:
    async def redirect(
        server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            await server.read_request(reader)
            body = b"moved " + b"x" * 100_000  # longer than is worth reading to its end
            writer.write(
                b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/\r\n"
                b"content-length: %d\r\n\r\n" % len(body) + body
            )
            await writer.drain()

    async with serving(redirect) as server:
        sink = WebhookSink(OPEN, 5_000)
        try:
            first = await sink.send(subscription(server.url), None, message(1))
            second = await sink.send(subscription(server.url), None, message(2))
        finally:
            await sink.close()
    assert (first.ok, first.status, first.retryable) == (False, 302, True)
    assert first.error is not None and first.error.startswith("HTTP 302 moved xxx")
    assert len(first.error) < 300
    assert not second.ok and len(server.requests) == 2
    assert server.connections == 2  # the unread answer's connection was not reused


async def test_no_answer_in_time_is_a_retryable_timeout() -> None:
    async def silent(
        server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read_request(reader)
        await reader.read()  # no answer, until the client gives up and closes

    async with serving(silent) as server:
        sink = WebhookSink(OPEN, 200)
        try:
            outcome = await sink.send(subscription(server.url), None, message())
        finally:
            await sink.close()
    assert not outcome.ok and outcome.retryable
    assert outcome.error is not None and "timeout" in outcome.error


async def test_a_refused_connection_is_a_retryable_failure() -> None:
    sink = WebhookSink(OPEN, 2_000)
    try:
        outcome = await sink.send(subscription("http://127.0.0.1:9/refused"), None, message())
    finally:
        await sink.close()
    assert not outcome.ok and outcome.retryable and outcome.status is None
    assert outcome.error is not None and outcome.error.startswith("ConnectError: ")


async def test_the_connected_peer_is_checked_before_a_byte_is_sent() -> None:
    """DNS said public, the socket reached loopback (a rebinding): nothing is sent."""
    strict = AddressGuard(allow_private=False)

    async def vetted(host: str, port: int) -> None:  # the first lookup answered "public"
        return None

    async with serving(answer_204, host="localhost") as server:
        sink = WebhookSink(strict, 2_000)
        sink.guard.vet = vetted  # type: ignore[method-assign]
        try:
            outcome = await sink.send(subscription(server.url), None, message())
            blocked_early = await WebhookSink(strict, 2_000).send(
                subscription(server.url), None, message()
            )
        finally:
            await sink.close()
    assert not outcome.ok and not outcome.retryable
    assert outcome.error is not None and "loopback" in outcome.error
    assert server.requests == []  # connected (maybe), but not a byte of a request
    assert not blocked_early.ok and not blocked_early.retryable  # the first lookup's check


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1: (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_is_verified_and_kept_alive(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    async with serving(answer_204, tls=server_tls, host="localhost") as server:
        trusting = WebhookSink(OPEN, 5_000, tls=ssl.create_default_context(cafile=str(cert)))
        default = WebhookSink(OPEN, 5_000)  # certifi's roots: the self-signed one is refused
        try:
            sent = [await trusting.send(subscription(server.url), None, message(i)) for i in (1, 2)]
            refused = await default.send(subscription(server.url), None, message(3))
        finally:
            await trusting.close()
            await default.close()
    assert [(o.ok, o.status) for o in sent] == [(True, 204), (True, 204)]
    assert len(server.requests) == 2
    assert (
        not refused.ok
        and refused.error is not None
        and "CERTIFICATE_VERIFY_FAILED" in refused.error
    )
    # One kept alive for both (the refused handshake never reaches the handler).
    assert server.connections == 1
