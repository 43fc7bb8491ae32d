"""The transition table, every pair."""

from __future__ import annotations

import itertools

import pytest

from app.engine.status import TERMINAL, Status, can_transition, is_terminal, sources_of

ALLOWED = {
    ("pending", "running"),
    ("pending", "paused"),
    ("pending", "cancelled"),
    ("pending", "failed"),
    ("running", "pending"),
    ("running", "paused"),
    ("running", "waiting"),
    ("running", "completed"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("paused", "pending"),
    ("paused", "cancelled"),
    ("waiting", "pending"),
    ("waiting", "running"),
    ("waiting", "paused"),
    ("waiting", "cancelled"),
    ("waiting", "failed"),
    ("failed", "pending"),
    ("cancelled", "pending"),
}


@pytest.mark.parametrize(
    ("current", "target"), list(itertools.product([s.value for s in Status], repeat=2))
)
def test_every_pair(current: str, target: str) -> None:
    assert can_transition(current, target) == ((current, target) in ALLOWED)


def test_completed_is_final() -> None:
    assert not any(can_transition(Status.COMPLETED, s) for s in Status)


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_only_leaves_by_retry(terminal: Status) -> None:
    assert is_terminal(terminal)
    assert all(t == Status.PENDING for t in Status if can_transition(terminal, t))


@pytest.mark.parametrize("target", list(Status))
def test_sources_are_the_inverse_of_the_table(target: Status) -> None:
    assert sources_of(target) == {s for s in Status if can_transition(s, target)}


def test_no_status_transitions_to_itself() -> None:
    assert not any(can_transition(s, s) for s in Status)
