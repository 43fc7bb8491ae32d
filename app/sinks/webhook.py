"""The webhook sink: a signed JSON POST; a 2xx answer is a delivery, anything else a retry."""

from __future__ import annotations

import time
from typing import ClassVar

import httpx

from app.errors import StepError
from app.nodes.ssrf import AddressGuard
from app.sinks.base import Message, Outcome
from app.sinks.signing import signature_header
from app.store.subscriptions import SubscriptionRecord

USER_AGENT = "Turnout-Webhooks/1"
DEFAULT_PORTS = {"http": 80, "https": 443}
ANSWER_BYTES = 200


class WebhookSink:
    kind: ClassVar[str] = "webhook"

    def __init__(self, guard: AddressGuard, timeout_ms: int) -> None:
        self.guard = guard
        # Its own client: no cookies, no redirects followed (a 3xx is not a delivery).
        self.client = httpx.AsyncClient(
            timeout=timeout_ms / 1000,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )

    async def send(
        self, subscription: SubscriptionRecord, secret: str | None, message: Message
    ) -> Outcome:
        url = httpx.URL(subscription.url or "")
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Turnout-Event-Id": message.id,
            "Turnout-Event-Type": message.event.type,
            "Turnout-Timestamp": str(timestamp),
        }
        if secret:
            headers["Turnout-Signature"] = signature_header(secret, timestamp, message.body)
        request = self.client.build_request("POST", url, content=message.body, headers=headers)
        try:
            # Checked at each delivery too: DNS may point elsewhere since the subscription
            # was made, and the connect check catches a rebinding between the two lookups.
            await self.guard.vet(url.host, url.port or DEFAULT_PORTS.get(url.scheme, 443))
            hook = self.guard.connect_check(url.host)
            if hook is not None:
                request.extensions["trace"] = hook
            response = await self.client.send(request, stream=True)
            try:
                # Only the start of an answer is kept (for the delivery's `lastError`).
                head = b""
                async for chunk in response.aiter_raw():
                    head += chunk
                    if len(head) >= ANSWER_BYTES:
                        break
            finally:
                await response.aclose()
        except StepError as exc:
            return Outcome(False, error=str(exc), retryable=exc.retryable)
        except httpx.HTTPError as exc:
            return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:500])
        if 200 <= response.status_code < 300:
            return Outcome(True, response.status_code)
        snippet = head[:ANSWER_BYTES].decode(errors="replace")
        return Outcome(
            False, response.status_code, f"HTTP {response.status_code} {snippet}".strip()
        )

    async def close(self) -> None:
        await self.client.aclose()
