"""What a breaker looks like from outside: `GET /circuits`, the dashboard, /metrics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.circuits.policy import CircuitPolicy, target_of


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass(frozen=True, slots=True)
class CircuitView:
    namespace: str
    name: str
    policy: CircuitPolicy
    state: str
    failures: int
    opened_at_ms: int | None
    next_probe_at_ms: int | None
    opens: int
    touched_ms: int

    @property
    def host(self) -> str:
        return target_of(self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "name": self.name,
            "namespace": self.namespace,
            "state": self.state,
            "failures": self.failures,
            "openedAt": iso(self.opened_at_ms) if self.state != "closed" else None,
            "nextProbeAt": iso(self.next_probe_at_ms) if self.state != "closed" else None,
            "opens": self.opens,
            "lastUsedAt": iso(self.touched_ms),
            "settings": self.policy.to_dict(),
        }
