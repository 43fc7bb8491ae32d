"""Retry policy (pure): given an attempt that failed, decide whether and when to try again."""

from __future__ import annotations

from dataclasses import dataclass

from app.nodes.template import RetryPolicy


@dataclass(frozen=True, slots=True)
class RetryDecision:
    retry: bool
    delay_ms: float = 0.0
    reason: str = ""


def backoff_ms(policy: RetryPolicy, attempt: int, rand: float) -> float:
    """Delay before attempt `attempt + 1`; `rand` in [0, 1) drives the jitter."""
    if policy.backoff == "fixed":
        base = float(policy.initial_delay)
    else:
        base = policy.initial_delay * policy.multiplier ** (attempt - 1)
    base = min(base, float(policy.max_delay))
    if policy.jitter:
        # "Equal jitter": keep half the delay, randomise the other half, so retries of
        # many executions spread out but never fire at once.
        return base / 2 + base / 2 * rand
    return base


def decide(
    policy: RetryPolicy | None,
    attempt: int,
    *,
    retryable: bool,
    rand: float,
    not_before_ms: float | None = None,
) -> RetryDecision:
    """`attempt` is the number of the attempt that just failed (1-based). `not_before_ms` is
    the error's own hint (an open circuit breaker: how long until it lets a call through):
    the delay is never shorter, even past `maxDelay`, so the retry is not spent failing fast
    again; the policy still decides whether there is a retry at all."""
    if not retryable:
        return RetryDecision(False, reason="error is not retryable")
    if policy is None or attempt >= policy.max_attempts:
        return RetryDecision(False, reason="no attempts left")
    delay = backoff_ms(policy, attempt, rand)
    if not_before_ms is not None:
        delay = max(delay, not_before_ms)
    return RetryDecision(True, delay)
