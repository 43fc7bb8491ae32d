"""The JSON rule every writer shares: what is refused, where, and the two normalisations."""

from __future__ import annotations

from typing import Any

import pytest

from app.jsonvalue import NotJSON, dumps, normalise

NESTED_65: Any = []
for _ in range(64):
    NESTED_65 = [NESTED_65]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"v": float("nan")}, "v: NaN is not valid JSON"),
        ({"v": [1, float("inf")]}, "v[1]: Infinity is not valid JSON"),
        ({"v": -1e308 * 10}, "v: -Infinity is not valid JSON"),
        ({"v": {1, 2}}, "v: set is not valid JSON"),
        ({"v": frozenset()}, "v: frozenset is not valid JSON"),
        ({"v": b"x"}, "v: bytes is not valid JSON"),
        ({"v": 1j}, "v: complex is not valid JSON"),
        ({"v": ...}, "v: Ellipsis is not valid JSON"),
        ({"v": object()}, "v: object is not valid JSON"),
        ({"a": {"b": "x\x00"}}, "a.b: a string may not contain NUL (\\u0000)"),
        ({"a": "\udfff"}, "a: a string may not contain a lone surrogate (\\udfff)"),
        ({"k\x00": 1}, "k\\u0000: a string may not contain NUL (\\u0000)"),
        ({"k\ud800": 1}, "k\\ud800: a string may not contain a lone surrogate (\\ud800)"),
        ({(1, 2): 1}, "(value): an object key must be a string, not tuple"),
        ({"v": 2**20_000}, "v: the integer is too large"),
    ],
)
def test_a_value_json_cannot_carry_is_refused_with_its_path(value: Any, message: str) -> None:
    with pytest.raises(NotJSON) as caught:
        normalise(value)
    assert message in str(caught.value)
    with pytest.raises(NotJSON):  # the writers' encoder refuses it too, with the same words
        dumps(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": (1, (2, 3))}, {"a": [1, [2, 3]]}),
        ({1: "x", "y": [None, True, 1.5]}, {"1": "x", "y": [None, True, 1.5]}),
        ("\\u0000 as text", "\\u0000 as text"),
        ("é ☃ 😀", "é ☃ 😀"),
    ],
)
def test_tuples_and_integer_keys_become_arrays_and_strings(value: Any, expected: Any) -> None:
    assert normalise(value) == expected


def test_json_that_is_plain_already_is_returned_as_is() -> None:
    value = {"a": [1, {"b": "c"}]}
    assert normalise(value) is value
    assert dumps(value) == '{"a":[1,{"b":"c"}]}'
    assert dumps("\\u0000") == '"\\\\u0000"'  # a backslash and "u0000" is not a NUL


def test_nesting_up_to_the_limit_is_accepted() -> None:
    assert normalise(NESTED_65, max_depth=65) is NESTED_65
    with pytest.raises(NotJSON, match="nested too deeply"):
        normalise(NESTED_65, max_depth=64)
