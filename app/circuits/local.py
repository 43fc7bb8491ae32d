"""Breaker state held in this process: the embedded backend (one process runs everything).

Every change happens between two awaits of one event loop, so no lock is needed."""

from __future__ import annotations

import time
from typing import Literal

from app.circuits.policy import Admission, CircuitPolicy, CircuitState, target_of
from app.circuits.view import CircuitView

Outcome = Literal["success", "failure", "abandoned"]
DAY_MS = 86_400_000
PRUNE_EVERY_MS = 60_000


def now_ms() -> int:
    return int(time.time() * 1000)


class LocalCircuits:
    """The `CircuitStore` of a process without Redis."""

    shared = False

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], CircuitState] = {}
        self._pruned_ms = 0

    def _state(self, namespace: str, name: str, policy: CircuitPolicy) -> CircuitState:
        state = self._states.get((namespace, name))
        if state is None:
            self._prune(now_ms())
            state = self._states[(namespace, name)] = CircuitState(policy)
        return state

    def _prune(self, now: int) -> None:
        """Forget breakers unused for a day (plus twice their window or cool-down), as the
        Redis keys expire: a service calling many hosts does not keep them all forever."""
        if now - self._pruned_ms < PRUNE_EVERY_MS:
            return
        self._pruned_ms = now
        for key, state in list(self._states.items()):
            ttl = 2 * max(state.policy.window_ms, state.policy.cooldown_ms) + DAY_MS
            if now - state.touched_ms > ttl:
                del self._states[key]

    async def admit(
        self, namespace: str, name: str, policy: CircuitPolicy, token: str, lease_ms: int
    ) -> Admission:
        return self._state(namespace, name, policy).admit(now_ms(), token, lease_ms)

    async def report(
        self, namespace: str, name: str, policy: CircuitPolicy, token: str, outcome: Outcome
    ) -> str | None:
        state = self._state(namespace, name, policy)
        if outcome == "success":
            return "closed" if state.succeeded(now_ms(), token) else None
        if outcome == "failure":
            return "opened" if state.failed(now_ms(), token) else None
        state.abandoned(token)
        return None

    async def views(self, namespace: str | None) -> list[CircuitView]:
        now = now_ms()
        views = []
        for (ns, name), state in sorted(self._states.items()):
            if namespace is not None and ns != namespace:
                continue
            horizon = now - state.policy.window_ms
            views.append(
                CircuitView(
                    namespace=ns,
                    name=name,
                    policy=state.policy,
                    state=state.state,
                    failures=sum(1 for t in state.failure_times if t > horizon),
                    opened_at_ms=state.opened_at_ms,
                    next_probe_at_ms=state.next_probe_at_ms,
                    opens=state.opens,
                    touched_ms=state.touched_ms,
                )
            )
        return views

    async def reset(self, namespace: str, target: str) -> list[str]:
        names = [
            name
            for (ns, name) in self._states
            if ns == namespace and matches(target_of(name), target)
        ]
        for name in names:
            del self._states[(namespace, name)]
        return sorted(names)


def matches(name_target: str, asked: str) -> bool:
    """`api.example.com:443` matches itself; `api.example.com` matches every port of it."""
    if name_target == asked:
        return True
    host = name_target.rsplit(":", 1)[0]
    return host == asked
