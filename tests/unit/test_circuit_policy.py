"""The breaker's state machine (app/circuits/policy.py) and the retry hint it gives."""

from __future__ import annotations

from app.circuits.local import LocalCircuits
from app.circuits.policy import CircuitPolicy, CircuitState, breaker_name, target_of
from app.engine.retry import decide
from app.nodes.template import RetryPolicy

POLICY = CircuitPolicy(failures=3, window_ms=1_000, cooldown_ms=500)


def opened(now: int = 0) -> CircuitState:
    state = CircuitState(POLICY)
    for i in range(3):
        state.admit(now, f"t{i}", 100)
        state.failed(now, f"t{i}")
    return state


def test_opens_after_n_failures_within_the_window() -> None:
    state = CircuitState(POLICY)
    assert not state.failed(0, "a")
    assert not state.failed(10, "b")
    assert str(state.state) == "closed"
    assert state.failed(20, "c")
    assert str(state.state) == "open"
    assert state.opened_at_ms == 20 and state.next_probe_at_ms == 520 and state.opens == 1


def test_failures_outside_the_window_do_not_count() -> None:
    state = CircuitState(POLICY)
    state.failed(0, "a")
    state.failed(10, "b")
    assert not state.failed(1_500, "c")  # the first two are older than 1 s
    assert str(state.state) == "closed" and state.failures == 1


def test_a_success_clears_the_count() -> None:
    state = CircuitState(POLICY)
    state.failed(0, "a")
    state.failed(1, "b")
    state.succeeded(2, "c")
    assert not state.failed(3, "d")
    assert state.failures == 1


def test_open_refuses_until_the_cool_down_then_one_probe() -> None:
    state = opened()
    refused = state.admit(100, "x", 100)
    assert not refused.allowed and refused.state == "open"
    assert refused.retry_at_ms == 500 and refused.failures == 3
    probe = state.admit(500, "p", 100)
    assert probe.allowed and probe.probe and str(state.state) == "half_open"
    other = state.admit(501, "q", 100)
    assert not other.allowed and other.state == "half_open"
    assert other.retry_at_ms == 600  # the probe's lease ends before the usual 1 s


def test_probe_success_closes_and_failure_reopens() -> None:
    state = opened()
    state.admit(500, "p", 100)
    assert not state.succeeded(510, "late")  # a call admitted before the breaker opened
    assert str(state.state) == "half_open"
    assert state.succeeded(520, "p")
    assert str(state.state) == "closed" and state.failures == 0
    state = opened()
    state.admit(500, "p", 100)
    assert state.failed(520, "p")
    assert str(state.state) == "open" and state.next_probe_at_ms == 1_020 and state.opens == 2


def test_a_lost_or_abandoned_probe_hands_over() -> None:
    state = opened()
    state.admit(500, "p", 100)
    assert not state.admit(550, "q", 100).allowed
    assert state.admit(600, "q", 100).probe  # p's lease ran out: its process died
    state.abandoned("q")
    assert state.admit(601, "r", 100).probe  # q was cancelled: r probes at once
    assert not state.failed(602, "q")  # q's late word is ignored


def test_names() -> None:
    assert breaker_name("a:443", POLICY, POLICY) == "a:443"
    other = CircuitPolicy(2, 1_000, 500)
    name = breaker_name("a:443", other, POLICY)
    assert name == "a:443|failures=2,windowMs=1000,cooldownMs=500"
    assert target_of(name) == "a:443"


def test_retry_waits_for_the_breaker_even_past_max_delay() -> None:
    policy = RetryPolicy(max_attempts=3, initial_delay=10, max_delay=100, jitter=False)
    assert decide(policy, 1, retryable=True, rand=0.0, not_before_ms=5_000).delay_ms == 5_000
    assert decide(policy, 1, retryable=True, rand=0.0, not_before_ms=1).delay_ms == 10
    assert not decide(policy, 3, retryable=True, rand=0.0, not_before_ms=5_000).retry


async def test_the_in_process_store_forgets_breakers_unused_for_a_day() -> None:
    store = LocalCircuits()
    await store.admit("ns", "old:443", POLICY, "t", 100)
    await store.admit("ns", "fresh:443", POLICY, "t", 100)
    [old] = [v for v in await store.views("ns") if v.name == "old:443"]
    store._states[("ns", "old:443")].touched_ms -= 86_400_000 + 3_000  # a day and its margin
    store._pruned_ms = 0
    await store.admit("ns", "new:443", POLICY, "t", 100)  # a new breaker prunes
    assert [v.name for v in await store.views("ns")] == ["fresh:443", "new:443"]
    assert old.state == "closed"
