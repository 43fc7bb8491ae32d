"""Execution statuses and the one table of allowed transitions (pure)."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL: frozenset[Status] = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})

# FROM -> allowed TO. Leaving a terminal status is only a retry (failed/cancelled -> pending),
# which starts a new attempt; completed never changes.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.RUNNING, Status.PAUSED, Status.CANCELLED, Status.FAILED}),
    Status.RUNNING: frozenset(
        {
            Status.PENDING,  # promoted, interrupted (shutdown), or lease recovered
            Status.PAUSED,
            Status.WAITING,
            Status.COMPLETED,
            Status.FAILED,
            Status.CANCELLED,
        }
    ),
    Status.PAUSED: frozenset({Status.PENDING, Status.CANCELLED}),
    # A due delay or answered input is claimed straight from waiting by a worker.
    Status.WAITING: frozenset(
        {Status.PENDING, Status.RUNNING, Status.PAUSED, Status.CANCELLED, Status.FAILED}
    ),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset({Status.PENDING}),
    Status.CANCELLED: frozenset({Status.PENDING}),
}


def can_transition(current: Status | str, target: Status | str) -> bool:
    """Whether `current -> target` is in the table."""
    return Status(target) in TRANSITIONS[Status(current)]


def sources_of(target: Status | str) -> frozenset[Status]:
    """Every status from which `target` may be reached: the guard of a SQL update."""
    goal = Status(target)
    return frozenset(src for src, targets in TRANSITIONS.items() if goal in targets)


def is_terminal(status: Status | str) -> bool:
    return Status(status) in TERMINAL


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


STEP_DONE: frozenset[StepStatus] = frozenset(
    {StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.SKIPPED}
)
