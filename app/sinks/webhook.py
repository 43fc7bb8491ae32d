"""The webhook sink: a signed JSON POST; a 2xx answer is a delivery, anything else a retry.

It sends through `app.sinks.http1` (a small keep-alive HTTP/1.1 client) rather than httpx:
see that module for why, and for how the SSRF guard, TLS and redirects are kept."""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import ClassVar

import h11
import httpx

from app.errors import StepError
from app.nodes.ssrf import AddressGuard
from app.sinks.base import Message, Outcome
from app.sinks.batches import array_body
from app.sinks.http1 import Http1Client, parse_target
from app.sinks.signing import signature_header
from app.store.subscriptions import SubscriptionRecord

USER_AGENT = "Turnout-Webhooks/1"
ANSWER_BYTES = 200
JSON = (b"content-type", b"application/json")


class WebhookSink:
    kind: ClassVar[str] = "webhook"

    def __init__(
        self, guard: AddressGuard, timeout_ms: int, tls: ssl.SSLContext | None = None
    ) -> None:
        self.guard = guard
        self.timeout_s = timeout_ms / 1000
        # Its own connections: no cookies, no redirects followed (a 3xx is not a delivery).
        self.client = Http1Client(guard, USER_AGENT, tls)

    async def send(
        self, subscription: SubscriptionRecord, secret: str | None, message: Message
    ) -> Outcome:
        about = [
            (b"turnout-event-id", message.id.encode()),
            (b"turnout-event-type", message.type.encode()),
        ]
        return await self._post(subscription, secret, about, message.body)

    async def send_batch(
        self, subscription: SubscriptionRecord, secret: str | None, messages: list[Message]
    ) -> Outcome:
        """One POST whose body is the JSON array of the events, in order per execution."""
        about = [(b"turnout-event-count", str(len(messages)).encode())]
        return await self._post(subscription, secret, about, array_body([m.body for m in messages]))

    async def _post(
        self,
        subscription: SubscriptionRecord,
        secret: str | None,
        about: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> Outcome:
        url = subscription.url or ""
        timestamp = int(time.time())
        headers = [JSON, *about, (b"turnout-timestamp", str(timestamp).encode())]
        if secret:
            signed = signature_header(secret, timestamp, body)
            headers.append((b"turnout-signature", signed.encode()))
        try:
            target = parse_target(url)
            async with asyncio.timeout(self.timeout_s):
                # Checked at each delivery too: DNS may point elsewhere since the
                # subscription was made, and the client checks each new connection's peer
                # (a rebinding between the two lookups).
                await self.guard.vet(target.host, target.origin[2])
                answer = await self.client.post(url, headers, body, ANSWER_BYTES)
        except StepError as exc:
            return Outcome(False, error=str(exc), retryable=exc.retryable)
        except TimeoutError:
            return Outcome(False, error=f"no answer in {self.timeout_s:g} s (timeout)")
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, h11.ProtocolError) as exc:
            return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:500])
        except httpx.InvalidURL as exc:
            return Outcome(False, error=f"bad url: {exc}"[:500], retryable=False)
        if 200 <= answer.status < 300:
            return Outcome(True, answer.status)
        snippet = answer.head[:ANSWER_BYTES].decode(errors="replace")
        return Outcome(False, answer.status, f"HTTP {answer.status} {snippet}".strip())

    async def close(self) -> None:
        await self.client.close()
