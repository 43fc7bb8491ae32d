"""The pure parts of event sinks: signatures (and the README's verification snippet), the
retry schedule, event patterns."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.sinks.patterns import matches, pattern_problem
from app.sinks.retry import DeliveryRetry
from app.sinks.signing import new_secret, signature_header, verify

README = Path(__file__).parents[2] / "README.md"
OPENSSL_HEX = "35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
BODY = b'{"executionId":"e1","seq":3,"type":"step.completed"}'


def readme_verifier() -> Callable[..., bool]:
    """`verify_turnout_signature` as the README's "Event sinks" section prints it."""
    section = README.read_text().split("## Event sinks", 1)[1].split("\n## ", 1)[0]
    [code] = [
        block
        for block in re.findall(r"```python\n(.*?)```", section, re.S)
        if "def verify_turnout_signature" in block
    ]
    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)
    verifier: Callable[..., bool] = scope["verify_turnout_signature"]
    return verifier


VERIFIERS = {"app": verify, "readme": readme_verifier()}


@pytest.mark.parametrize("name", VERIFIERS)
def test_a_good_signature_verifies_and_a_bad_one_does_not(name: str) -> None:
    check = VERIFIERS[name]
    secret = new_secret()
    now = int(time.time())
    header = signature_header(secret, now, BODY)
    assert check(secret, header, BODY)
    assert not check(secret, header, BODY.replace(b"3", b"4"))  # body changed
    assert not check(new_secret(), header, BODY)  # another secret
    assert not check(secret, header.replace(f"t={now}", f"t={now + 1}"), BODY)  # timestamp
    assert not check(secret, signature_header(secret, now - 3600, BODY), BODY)  # a replay
    assert not check(secret, header[:-1] + ("0" if header[-1] != "0" else "1"), BODY)
    assert not check(secret, "v1=abc", BODY)
    assert not check(secret, "", BODY)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # Computed once with: printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test
    header = signature_header("whsec_test", 1_700_000_000, b"{}")
    assert header == f"t=1700000000,v1={OPENSSL_HEX}"


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [(1, 50, 100), (2, 100, 200), (3, 200, 400), (5, 500, 1000), (9, 500, 1000)],
)
def test_backoff_doubles_up_to_the_cap_with_jitter(attempts: int, low: int, high: int) -> None:
    policy = DeliveryRetry(base_ms=100, max_ms=1000, max_attempts=10)
    draws = [policy.next_delay_ms(attempts, random.Random(seed)) for seed in range(200)]
    assert all(d is not None and low <= d <= high for d in draws)
    assert len(set(draws)) > 20  # jittered, not one fixed wait


def test_after_the_last_attempt_there_is_no_retry() -> None:
    policy = DeliveryRetry(base_ms=100, max_ms=1000, max_attempts=3)
    assert policy.next_delay_ms(2) is not None
    assert policy.next_delay_ms(3) is None


@pytest.mark.parametrize(
    ("patterns", "event", "taken"),
    [
        (["*"], "step.failed", True),
        (["execution.*"], "execution.completed", True),
        (["execution.*"], "step.completed", False),
        (["step.failed"], "step.failed", True),
        (["step.failed"], "step.failed_twice", False),
        (["step.*", "execution.failed"], "execution.failed", True),
        ([], "execution.failed", False),
    ],
)
def test_patterns(patterns: list[str], event: str, taken: bool) -> None:
    assert matches(patterns, event) is taken


@pytest.mark.parametrize("pattern", ["step.finished", "execution", "steps.*", "*.failed", ""])
def test_unknown_patterns_are_named(pattern: str) -> None:
    assert pattern_problem(pattern) is not None
