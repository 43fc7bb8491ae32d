"""Which events a subscription takes: its `events` patterns, checked and matched (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

EVENT_TYPES = frozenset(
    {
        *(
            f"execution.{kind}"
            for kind in (
                "created",
                "started",
                "paused",
                "resumed",
                "waiting",
                "promoted",
                "completed",
                "failed",
                "cancelled",
            )
        ),
        *(f"step.{kind}" for kind in ("started", "completed", "failed", "retrying", "skipped")),
    }
)
WILDCARDS = frozenset({"*", "execution.*", "step.*"})


def pattern_problem(pattern: str) -> str | None:
    """Why a pattern can match nothing (a typo), or None when it is one we know."""
    if pattern in WILDCARDS or pattern in EVENT_TYPES:
        return None
    return (
        f"unknown event pattern {pattern!r}: use '*', 'execution.*', 'step.*' or one of "
        + ", ".join(sorted(EVENT_TYPES))
    )


def matches(patterns: Iterable[str], event_type: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def normalise(patterns: Sequence[str]) -> list[str]:
    """Each pattern once, in the order given."""
    return list(dict.fromkeys(patterns))
