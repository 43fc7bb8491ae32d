"""Flow-control fields: validated with the workflow, keys evaluated once per run (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.workflows.flow import (
    ConcurrencyPolicy,
    KeyInvalid,
    RateLimitPolicy,
    flow_spec,
    key_value,
)


@pytest.mark.parametrize(
    ("template", "value", "expected"),
    [
        ("{{ input.tenant }}", {"tenant": "acme"}, "acme"),
        ("{{ input.n }}", {"n": 7}, "7"),
        ("{{ input.flag }}", {"flag": True}, "true"),
        ("t-{{ input.a }}-{{ input.b }}", {"a": 1, "b": "x"}, "t-1-x"),
        ("static", {}, "static"),
        (None, {}, ""),
    ],
)
def test_a_key_renders_over_the_input_as_text(
    template: str | None, value: Any, expected: str
) -> None:
    assert key_value(template, value) == expected


@pytest.mark.parametrize(
    ("template", "value", "message"),
    [
        ("{{ input.tenant }}", {}, "no key 'tenant'"),
        ("{{ input.tenant }}", {"tenant": None}, "gave null"),
        ("{{ input.tenant }}", {"tenant": {"id": 1}}, "gave dict"),
        ("{{ input.tenant }}", {"tenant": "x" * 201}, "201 characters"),
    ],
)
def test_a_key_that_is_not_a_short_scalar_is_refused(
    template: str, value: Any, message: str
) -> None:
    with pytest.raises(KeyInvalid, match=message) as caught:
        key_value(template, value, "rateLimit")
    assert caught.value.where == "rateLimit"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"key": "{{ a.b }}"}, "may only read 'input'"),
        ({"key": "{{ input.t "}, "not closed"),
        ({"limit": 0}, "greater than or equal to 1"),
        ({"strategy": "drop"}, "'queue', 'cancel_in_progress' or 'cancel_newest'"),
    ],
)
def test_a_bad_concurrency_policy_is_a_validation_error(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        ConcurrencyPolicy.model_validate(raw)


def test_rate_limit_needs_a_positive_rate() -> None:
    with pytest.raises(ValidationError):
        RateLimitPolicy.model_validate({"perSecond": 0})
    assert RateLimitPolicy.model_validate({"perSecond": 0.5}).burst == 1


def test_the_spec_holds_evaluated_keys_and_is_none_without_flow_control() -> None:
    concurrency = ConcurrencyPolicy.model_validate({"key": "{{ input.t }}", "limit": 2})
    rate = RateLimitPolicy.model_validate({"key": "{{ input.a }}", "perSecond": 3, "burst": 5})
    spec = flow_spec(concurrency, rate, {"t": "x", "a": "y"}, namespace_limit=4)
    assert spec == {
        "concurrency": {"key": "x", "limit": 2, "strategy": "queue"},
        "rateLimit": {"key": "y", "perSecond": 3.0, "burst": 5},
        "namespaceLimit": 4,
    }
    assert flow_spec(None, None, {}, namespace_limit=0) is None
