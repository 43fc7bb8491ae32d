"""The delivery loop of a worker (or of the embedded process): claim, send, record.

Up to `sink_batch` queues (one per subscription and execution) are in flight at once, each
sent in seq order by its own task; a queue stops at its first failure (the rest waits
behind it, leased to nobody) and deliveries made are recorded in batches (of one queue's
deliveries, and across the queues that finish together: `app.sinks.recorder`), so a crash
between sending and recording sends them again: at least once, with the same event id."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Mapping
from itertools import groupby
from typing import Any
from uuid import UUID

from app.auth.vault import VaultUnavailable
from app.config import Settings
from app.sinks.base import Outcome, Sink
from app.sinks.batched import BatchedSender, message_for, no_sink
from app.sinks.cache import SubscriptionCache
from app.sinks.recorder import DeliveryRecorder
from app.sinks.retry import DeliveryRetry
from app.sinks.sealing import SecretSeal
from app.sinks.wake import OutboxSignal
from app.store.deliveries import DeliveryRecord, DeliveryStore, Recorded
from app.store.subscriptions import ACTIVE, FAILING, SubscriptionRecord, SubscriptionStore
from app.tasks import stop

log = logging.getLogger(__name__)

_BACKOFF_MAX_S = 10.0
# Deliveries made are recorded after this many, or this long, within one queue (what a
# crash sends twice).
FLUSH_EVERY = 50
FLUSH_AFTER_S = 0.5
COALESCE_S = 0.005


class Dispatcher:
    def __init__(
        self,
        *,
        settings: Settings,
        owner: str,
        deliveries: DeliveryStore,
        subscriptions: SubscriptionStore,
        cache: SubscriptionCache,
        sinks: Mapping[str, Sink],
        seal: SecretSeal,
        signal: OutboxSignal,
    ) -> None:
        self.owner = owner
        self.deliveries = deliveries
        self.subscriptions = subscriptions
        self.cache = cache
        self.sinks = sinks
        self.seal = seal
        self.signal = signal
        self.batch = settings.sink_batch
        self.lease_ms = settings.sink_lease_ms
        self.poll_s = settings.sink_poll_ms / 1000
        self.retry = DeliveryRetry(
            settings.sink_retry_base_ms, settings.sink_retry_max_ms, settings.sink_max_attempts
        )
        # What the queues delivered goes to the database together (one statement for all
        # the queues that finished while the previous one ran).
        self.recorder = DeliveryRecorder(deliveries, owner, self.lease_ms)
        self.batched = BatchedSender(self, settings.sink_linger_ms)
        self.in_flight: set[asyncio.Task[None]] = set()
        self.failing: set[UUID] = set()
        self._task: asyncio.Task[None] | None = None

    async def claim_once(self) -> int:
        """Claim what is due (as many queues as there is room for); how many tasks."""
        room = self.batch - len(self.in_flight)
        if room <= 0:
            return 0
        claimed = await self.deliveries.claim(self.owner, room, self.lease_ms)
        self.batched.fed = False
        tasks = claimed_queues = 0
        for sub_id, rows in groupby(claimed, key=lambda x: x.subscription_id):
            queues = [list(q) for _, q in groupby(rows, key=lambda x: x.execution_id)]
            claimed_queues += len(queues)
            sub = self.cache.by_id.get(sub_id)
            if sub is None:  # not cached yet (made in another process): look it up first
                self._spawn(sub_id, self._send_uncached(sub_id, queues))
            elif sub.batch_size > 1:  # the queues go out together, after those in flight
                tasks += self.batched.take(sub, queues)
                continue
            else:
                for queue in queues:
                    self._spawn(sub_id, self._send_rows(sub_id, queue))
                tasks += len(queues) - 1
            tasks += 1
        # A full claim: there may be more due, even if all went to batches in flight.
        return max(tasks, int(claimed_queues >= room))

    def spawn(self, sub_id: UUID, work: Coroutine[Any, Any, None]) -> None:
        self._spawn(sub_id, work)

    def _spawn(self, sub_id: UUID, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._guarded(sub_id, work))
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def _guarded(self, sub_id: UUID, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as exc:  # the database went away: the lease runs out, others retry
            log.warning(
                "delivery queue failed",
                extra={"subscription": str(sub_id), "error": f"{type(exc).__name__}: {exc}"[:200]},
            )
        finally:
            self.signal.local.set()  # room for another queue

    async def _send_uncached(self, sub_id: UUID, queues: list[list[DeliveryRecord]]) -> None:
        sub = await self._subscription(sub_id)
        if sub is not None and sub.batch_size > 1:
            self.batched.take(sub, queues)
            return
        for queue in queues:  # one after the other: rare (the cache reloads every second)
            await self._send_rows(sub_id, queue)

    async def _subscription(self, sub_id: UUID) -> SubscriptionRecord | None:
        found = self.cache.by_id.get(sub_id)
        return found or await self.subscriptions.get(sub_id, None)

    async def _send_rows(self, sub_id: UUID, rows: list[DeliveryRecord]) -> None:
        sub = await self._subscription(sub_id)
        if sub is None:  # deleted meanwhile
            await self.deliveries.drop([r.id for r in rows])
            return
        try:
            secret = self.seal.unseal(sub.secret)
        except VaultUnavailable as exc:
            await self.fail(sub, [rows[0]], Outcome(False, error=str(exc), retryable=False))
            return
        while rows:
            sent = await self._send_in_order(sub, secret, rows)
            if sent is None:
                return  # failed, or the lease was lost: the queue stops here
            done, status = sent
            # Record them and take what the execution added meanwhile, in one round trip
            # (shared with the other queues that finished meanwhile).
            rows = await self.recorder.record(Recorded(done, status, rows[-1]))
        await self.succeeded(sub)

    async def succeeded(self, sub: SubscriptionRecord) -> None:
        """Failing as cached, or as this process made it (the cache may predate that):
        active again."""
        if sub.status == FAILING or sub.id in self.failing:
            await self.subscriptions.mark(sub.id, ACTIVE)
            sub.status = ACTIVE
            self.failing.discard(sub.id)

    async def _send_in_order(
        self, sub: SubscriptionRecord, secret: str | None, rows: list[DeliveryRecord]
    ) -> tuple[list[int], int | None] | None:
        """Send `rows` one after the other; the ids not yet recorded as delivered, and the
        last answer's status, or None when the queue stopped (a failure, a lost lease)."""
        sink = self.sinks.get(sub.sink)
        done: list[int] = []
        last_status: int | None = None
        renewed = flushed = time.monotonic()
        for n, row in enumerate(rows):
            if row.body is None:  # its execution was deleted (retention)
                await self.deliveries.drop([row.id])
                continue
            if time.monotonic() - renewed > self.lease_ms / 3000:
                await self._flush(done, last_status)
                left = list(dict.fromkeys(r.id for r in rows if r.id >= row.id))
                if await self.deliveries.renew(self.owner, left, self.lease_ms) < len(left):
                    return None  # the lease was lost: another worker goes on in order
                renewed = time.monotonic()
            if sink is None:
                outcome = no_sink(sub)
            else:
                outcome = await sink.send(sub, secret, message_for(row, row.body))
            if not outcome.ok:
                await self._flush(done, last_status)
                await self.fail(sub, [row], outcome)
                return None
            last_status = outcome.status
            if n + 1 < len(rows) and rows[n + 1].id == row.id:
                continue  # a delivery is recorded once all of its events went
            done.append(row.id)
            if len(done) >= FLUSH_EVERY or time.monotonic() - flushed > FLUSH_AFTER_S:
                await self._flush(done, last_status)
                flushed = time.monotonic()
        return done, last_status

    async def _flush(self, done: list[int], status: int | None) -> None:
        if done:
            await self.recorder.record(Recorded(list(done), status))
            done.clear()

    async def fail(
        self, sub: SubscriptionRecord, heads: list[DeliveryRecord], outcome: Outcome
    ) -> None:
        """A failed attempt at the head of each queue in `heads` (one delivery, or one
        batch): each is due again after its backoff, or dead; the rest of each queue is
        released (it waits behind its head)."""
        dead = False
        delays: list[int] = []
        for row in heads:
            delay = self.retry.next_delay_ms(row.attempts + 1) if outcome.retryable else None
            await self.deliveries.failed(
                self.owner, row, outcome.status, outcome.error or "failed", delay
            )
            dead = dead or delay is None
            delays += [delay] if delay is not None else []
        first = heads[0]
        extra: dict[str, Any] = {
            "subscription": str(sub.id),
            "event_id": f"{first.execution_id}:{first.seq}",
            "attempt": first.attempts + 1,
            "status": outcome.status,
            "error": (outcome.error or "")[:200],
        }
        if len(heads) > 1:
            extra["queues"] = len(heads)
        if dead:  # the subscription was marked failing with the dead delivery
            log.warning("delivery dead; subscription failing", extra=extra)
            sub.status = FAILING
            self.failing.add(sub.id)
        else:
            log.info("delivery failed; retrying", extra={**extra, "retry_in_ms": min(delays)})

    async def run_forever(self) -> None:
        delay = self.poll_s
        while True:
            try:
                claimed = await self.claim_once()
                delay = self.poll_s
            except Exception as exc:
                claimed = 0
                delay = min(_BACKOFF_MAX_S, max(self.poll_s, delay * 2))
                log.warning(
                    "delivery claim failed; retrying",
                    extra={"error": f"{type(exc).__name__}: {exc}"[:200], "retry_in_s": delay},
                )
            if claimed and len(self.in_flight) < self.batch:
                continue  # there may be more due
            if self.batched.fed and not claimed:  # all of it joined batches in flight
                await self.batched.next_round(delay)
            if await self.signal.wait(delay):
                await asyncio.sleep(COALESCE_S)  # let the pokes of one burst make one claim

    def start(self) -> None:
        self.signal.local_room = lambda: len(self.in_flight) < self.batch
        self.signal.listen()
        if self._task is None:
            self._task = asyncio.create_task(self.run_forever(), name="turnout-deliveries")

    async def close(self) -> None:
        await stop(self._task)
        self._task = None
        if self.in_flight:  # let queues being sent finish (their lease would delay them)
            await asyncio.wait(list(self.in_flight), timeout=2)
        for task in list(self.in_flight):
            task.cancel()
        await asyncio.gather(*self.in_flight, return_exceptions=True)
        await self.recorder.close()
        await self.signal.close()
        for sink in self.sinks.values():
            await sink.close()
