"""What `http.request` calls: admit a call (or refuse it with `circuit_open`), then report
how it went. The store is Redis when configured, else this process's memory."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from redis.exceptions import RedisError

from app.circuits.local import LocalCircuits
from app.circuits.policy import STATE_VALUE, Admission, CircuitPolicy, breaker_name
from app.circuits.redis_store import RedisCircuits
from app.circuits.view import CircuitView, iso
from app.errors import StepError
from app.metrics import CIRCUIT_OPENS, CIRCUIT_REJECTED, CIRCUIT_STATE

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from app.config import Settings

log = logging.getLogger(__name__)

Outcome = Literal["success", "failure", "abandoned"]
# A probe's lease outlives its request by this much before another call may probe instead.
PROBE_LEASE_MARGIN_MS = 5_000


class CircuitOpen(StepError):
    """The target's circuit breaker is open: the call was not made."""

    code = "circuit_open"
    retryable = True

    def __init__(self, message: str, *, retry_after_ms: int) -> None:
        super().__init__(message)
        # Read by the retry policy (app/engine/retry.py): wait at least this long.
        self.retry_after_ms = retry_after_ms


class CircuitStore(Protocol):
    shared: bool

    async def admit(
        self, namespace: str, name: str, policy: CircuitPolicy, token: str, lease_ms: int
    ) -> Admission: ...

    async def report(
        self, namespace: str, name: str, policy: CircuitPolicy, token: str, outcome: Outcome
    ) -> str | None: ...

    async def views(self, namespace: str | None) -> list[CircuitView]: ...

    async def reset(self, namespace: str, target: str) -> list[str]: ...


@dataclass(slots=True)
class Ticket:
    """One admitted call; `report` it exactly once."""

    breakers: CircuitBreakers
    namespace: str
    name: str
    policy: CircuitPolicy
    token: str
    probe: bool
    failures_seen: int = 0

    async def report(self, outcome: Outcome) -> None:
        await self.breakers.report(self, outcome)


class CircuitBreakers:
    def __init__(self, store: CircuitStore, default: CircuitPolicy) -> None:
        self.store = store
        self.default = default

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis | None) -> CircuitBreakers:
        store: CircuitStore = (
            RedisCircuits(redis, settings.key_prefix) if redis is not None else LocalCircuits()
        )
        return cls(store, default_policy(settings))

    async def admit(
        self, namespace: str, target: str, policy: CircuitPolicy, timeout_ms: int
    ) -> Ticket | None:
        """A ticket for the call, None when the store cannot be asked (the call goes on:
        the breaker protects the target, it must not stop calls when Redis is away);
        raises CircuitOpen when the breaker refuses."""
        name = breaker_name(target, policy, self.default)
        token = uuid.uuid4().hex
        try:
            admission = await self.store.admit(
                namespace, name, policy, token, timeout_ms + PROBE_LEASE_MARGIN_MS
            )
        except (RedisError, OSError) as exc:
            log.warning("circuit store unreachable, call let through", extra={"error": str(exc)})
            return None
        CIRCUIT_STATE.labels(namespace=namespace, host=name).set(STATE_VALUE[admission.state])
        if not admission.allowed:
            CIRCUIT_REJECTED.labels(namespace=namespace, host=name).inc()
            raise refusal(target, admission)
        if admission.probe:
            log.info("circuit half-open: probing", extra={"namespace": namespace, "host": name})
        return Ticket(self, namespace, name, policy, token, admission.probe, admission.failures)

    async def report(self, ticket: Ticket, outcome: Outcome) -> None:
        if not ticket.probe and (
            outcome == "abandoned" or (outcome == "success" and ticket.failures_seen == 0)
        ):
            return  # nothing to change: the common case costs one round trip, not two
        try:
            change = await self.store.report(
                ticket.namespace, ticket.name, ticket.policy, ticket.token, outcome
            )
        except (RedisError, OSError) as exc:
            log.warning("circuit store unreachable, outcome lost", extra={"error": str(exc)})
            return
        gauge = CIRCUIT_STATE.labels(namespace=ticket.namespace, host=ticket.name)
        if change == "opened":
            CIRCUIT_OPENS.labels(namespace=ticket.namespace, host=ticket.name).inc()
            gauge.set(STATE_VALUE["open"])
            log.warning(
                "circuit opened",
                extra={"namespace": ticket.namespace, "host": ticket.name, "probe": ticket.probe},
            )
        elif change == "closed":
            gauge.set(STATE_VALUE["closed"])
            log.info("circuit closed", extra={"namespace": ticket.namespace, "host": ticket.name})

    async def views(self, namespace: str | None) -> list[CircuitView]:
        views = await self.store.views(namespace)
        if namespace is None:
            # Every breaker that exists, and no other: the gauge's label sets stay bounded
            # by the hosts used lately (a breaker unused for a day expires), not by every
            # host ever called.
            CIRCUIT_STATE.clear()
        for view in views:  # /metrics shows the shared state, not only this process's view
            CIRCUIT_STATE.labels(namespace=view.namespace, host=view.name).set(
                STATE_VALUE.get(view.state, 0)
            )
        return views

    async def reset(self, namespace: str, target: str) -> list[str]:
        names = await self.store.reset(namespace, target)
        for name in names:
            CIRCUIT_STATE.labels(namespace=namespace, host=name).set(STATE_VALUE["closed"])
        return names


async def refresh_circuit_gauges(circuits: CircuitBreakers) -> None:
    """Before /metrics answers: the gauge per breaker from the shared state (every
    namespace), so the API shows what the workers' calls did; skipped if Redis is away."""
    try:
        async with asyncio.timeout(1.0):
            await circuits.views(None)
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("circuit gauges not refreshed", extra={"error": str(exc)})


def default_policy(settings: Settings) -> CircuitPolicy:
    return CircuitPolicy(
        settings.circuit_failures, settings.circuit_window_ms, settings.circuit_cooldown_ms
    )


def refusal(target: str, admission: Admission) -> CircuitOpen:
    wait_ms = max(0, admission.retry_at_ms - int(time.time() * 1000))
    if admission.state == "half_open":
        why = "is half-open and its one probe is in flight"
    else:
        why = f"is open after {admission.failures} failures"
    return CircuitOpen(
        f"circuit breaker for {target} {why}; the call was not made. It lets a call through "
        f"again at {iso(admission.retry_at_ms)} (in {wait_ms} ms)",
        retry_after_ms=wait_ms,
    )
