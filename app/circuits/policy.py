"""The breaker's state machine (pure): closed, open, half-open, and what each outcome does.

Closed: calls pass. A failure is counted; a success clears the count; `failures` failures
within `window_ms` open the breaker. Open: calls fail fast until `cooldown_ms` has passed
since it opened; then exactly one call (the probe) is let through and the breaker is
half-open. Half-open: every other call fails fast; the probe's success closes the breaker,
its failure opens it again for another cool-down. A probe that never reports (its process
died) loses its lease after `lease_ms`, and the next call becomes the probe.

The Redis store runs the same rules in a Lua script (app/circuits/redis_store.py); this
module is the reference, used by the in-process store and tested on its own.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

State = Literal["closed", "half_open", "open"]
STATE_VALUE: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}  # the /metrics gauge
# While a probe is in flight, a rejected call is told to look again this soon.
HALF_OPEN_RETRY_MS = 1_000


@dataclass(frozen=True, slots=True)
class CircuitPolicy:
    """Thresholds: the service's (TURNOUT_CIRCUIT_*) or a node's own."""

    failures: int
    window_ms: int
    cooldown_ms: int

    def suffix(self) -> str:
        return f"failures={self.failures},windowMs={self.window_ms},cooldownMs={self.cooldown_ms}"

    def to_dict(self) -> dict[str, int]:
        return {
            "failures": self.failures,
            "windowMs": self.window_ms,
            "cooldownMs": self.cooldown_ms,
        }


def breaker_name(target: str, policy: CircuitPolicy, default: CircuitPolicy) -> str:
    """`host:port` with the service's thresholds; a node with its own thresholds has its own
    breaker for the host, `host:port|failures=2,windowMs=...,cooldownMs=...`."""
    return target if policy == default else f"{target}|{policy.suffix()}"


def target_of(name: str) -> str:
    return name.split("|", 1)[0]


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether a call may go: `probe` when it is the half-open probe; when refused,
    `retry_at_ms` is when the breaker may let a call through again."""

    allowed: bool
    probe: bool = False
    state: State = "closed"
    failures: int = 0
    retry_at_ms: int = 0
    next_probe_at_ms: int = 0


@dataclass(slots=True)
class CircuitState:
    """One breaker's state; times are epoch milliseconds."""

    policy: CircuitPolicy
    state: State = "closed"
    failure_times: deque[int] = field(default_factory=deque)  # oldest first
    opened_at_ms: int | None = None
    next_probe_at_ms: int | None = None
    probe_token: str | None = None
    probe_until_ms: int = 0
    opens: int = 0
    touched_ms: int = 0

    @property
    def failures(self) -> int:
        return len(self.failure_times)

    def admit(self, now_ms: int, token: str, lease_ms: int) -> Admission:
        self.touched_ms = now_ms
        if self.state == "closed":
            return Admission(True, state="closed", failures=self.failures)
        next_probe = self.next_probe_at_ms or now_ms
        if self.state == "open" and now_ms < next_probe:
            return self._refused(next_probe, next_probe)
        if self.state == "half_open" and now_ms < self.probe_until_ms:
            retry = min(self.probe_until_ms, now_ms + HALF_OPEN_RETRY_MS)
            return self._refused(retry, next_probe)
        # Cool-down over (or the last probe's lease ran out): this call is the probe.
        self.state = "half_open"
        self.probe_token = token
        self.probe_until_ms = now_ms + lease_ms
        return Admission(True, probe=True, state="half_open", failures=self.failures)

    def _refused(self, retry_at_ms: int, next_probe_ms: int) -> Admission:
        return Admission(
            False,
            state=self.state,
            failures=self.failures,
            retry_at_ms=retry_at_ms,
            next_probe_at_ms=next_probe_ms,
        )

    def succeeded(self, now_ms: int, token: str) -> bool:
        """A call's success; True when it closed the breaker."""
        self.touched_ms = now_ms
        if self.state == "closed":
            self.failure_times.clear()
            return False
        if self.state == "half_open" and token == self.probe_token:
            self._close()
            return True
        return False  # a call let through before the breaker opened: only the probe decides

    def failed(self, now_ms: int, token: str) -> bool:
        """A call's failure; True when it opened the breaker."""
        self.touched_ms = now_ms
        if self.state == "closed":
            horizon = now_ms - self.policy.window_ms
            while self.failure_times and self.failure_times[0] <= horizon:
                self.failure_times.popleft()
            self.failure_times.append(now_ms)
            if len(self.failure_times) >= self.policy.failures:
                self._open(now_ms)
                return True
            return False
        if self.state == "half_open" and token == self.probe_token:
            self._open(now_ms)
            return True
        return False

    def abandoned(self, token: str) -> None:
        """The probe ended without an answer about the target (cancelled, refused by the
        address guard): the next call may probe at once."""
        if self.state == "half_open" and token == self.probe_token:
            self.probe_token = None
            self.probe_until_ms = 0

    def _open(self, now_ms: int) -> None:
        self.state = "open"
        self.opened_at_ms = now_ms
        self.next_probe_at_ms = now_ms + self.policy.cooldown_ms
        self.probe_token = None
        self.probe_until_ms = 0
        self.opens += 1

    def _close(self) -> None:
        self.state = "closed"
        self.failure_times.clear()
        self.opened_at_ms = None
        self.next_probe_at_ms = None
        self.probe_token = None
        self.probe_until_ms = 0
