"""The retry policy: a pure decision, tested by table."""

from __future__ import annotations

import pytest

from app.engine.retry import backoff_ms, decide
from app.workflows.model import RetryPolicy


def policy(**kw: object) -> RetryPolicy:
    return RetryPolicy.model_validate({"jitter": False, **kw})


@pytest.mark.parametrize(
    ("kw", "attempt", "expected"),
    [
        ({"initialDelay": 100}, 1, 100),
        ({"initialDelay": 100}, 2, 200),
        ({"initialDelay": 100}, 3, 400),
        ({"initialDelay": 100, "multiplier": 3}, 3, 900),
        ({"initialDelay": 100, "maxDelay": 250}, 3, 250),
        ({"initialDelay": 100, "backoff": "fixed"}, 1, 100),
        ({"initialDelay": 100, "backoff": "fixed"}, 7, 100),
        ({"initialDelay": 0}, 5, 0),
    ],
)
def test_backoff(kw: dict[str, object], attempt: int, expected: float) -> None:
    assert backoff_ms(policy(**kw), attempt, rand=0.5) == expected


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 50.0), (0.5, 75.0), (0.999, 99.95)])
def test_jitter_keeps_half_and_randomises_half(rand: float, expected: float) -> None:
    jittered = RetryPolicy(initial_delay=100, jitter=True)
    assert backoff_ms(jittered, 1, rand) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("max_attempts", "attempt", "retryable", "retry"),
    [
        (3, 1, True, True),
        (3, 2, True, True),
        (3, 3, True, False),
        (3, 1, False, False),
        (1, 1, True, False),
    ],
)
def test_decide(max_attempts: int, attempt: int, retryable: bool, retry: bool) -> None:
    decision = decide(policy(maxAttempts=max_attempts), attempt, retryable=retryable, rand=0)
    assert decision.retry is retry
    assert decision.reason or decision.retry


def test_no_policy_means_no_retry() -> None:
    assert decide(None, 1, retryable=True, rand=0).retry is False
