"""User JSON Schemas: only refs inside the document resolve; validation is bounded."""

from __future__ import annotations

from typing import Any

import pytest

from app.jsonschemas import SchemaUnusable, schema_problems, validate


@pytest.mark.parametrize(
    "ref", ["http://127.0.0.1:9/json", "file:///etc/passwd", "other.json", "//host/x"]
)
def test_a_ref_outside_the_document_is_a_problem_naming_it(ref: str) -> None:
    problems = schema_problems({"properties": {"a": {"$ref": ref}}})

    assert [path for path, _ in problems] == [("properties", "a", "$ref")]
    assert ref in problems[0][1]


def test_a_relative_ref_under_an_id_is_refused_too() -> None:
    problems = schema_problems({"$id": "http://10.0.0.1/s.json", "$ref": "other.json"})

    assert problems and "other.json" in problems[0][1]


def test_a_local_ref_to_nothing_is_a_problem() -> None:
    problems = schema_problems({"$ref": "#/$defs/missing"})

    assert problems and "points to nothing" in problems[0][1]


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},
        {"$anchor": "me", "$ref": "#me"},
        {
            "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}},
            "$ref": "#/$defs/a",
        },
    ],
)
def test_a_schema_that_refers_to_itself_without_end_is_a_problem(schema: dict[str, Any]) -> None:
    problems = schema_problems(schema)

    assert problems and "itself" in problems[0][1]


def test_exponential_ref_fan_out_stops_at_the_step_bound() -> None:
    defs: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(40)
    }
    defs["d40"] = {"type": "integer"}
    schema = {"$defs": defs, "$ref": "#/$defs/d0"}

    with pytest.raises(SchemaUnusable, match="steps"):
        validate(schema, 1)


def test_a_fan_out_hidden_behind_properties_stops_when_data_reaches_it() -> None:
    defs: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(40)
    }
    defs["d40"] = {"type": "integer"}
    schema = {"$defs": defs, "properties": {"a": {"$ref": "#/$defs/d0"}}}
    assert schema_problems(schema) == []  # `null` never reaches the fan-out

    with pytest.raises(SchemaUnusable, match="steps to validate"):
        validate(schema, {"a": 1})


def test_honest_large_input_validates_within_the_budget() -> None:
    row = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(10)}}
    schema = {"type": "array", "items": {"anyOf": [row, {"type": "null"}]}}
    data = [{f"p{i}": i for i in range(10)} for _ in range(1000)] + [None]

    assert validate(schema, data) == []
    assert [e.message for e in validate(schema, [{"p0": "x"}])] != []


def test_data_keywords_may_hold_a_ref_key() -> None:
    assert schema_problems({"const": {"$ref": "http://x"}, "enum": [{"$ref": "http://y"}]}) == []


def test_recursive_tree_schema_validates_by_the_data() -> None:
    tree = {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}

    assert schema_problems(tree) == []
    assert validate(tree, {"kids": [{"kids": []}]}) == []
    assert [e.message for e in validate(tree, {"kids": [{"kids": 1}]})] == [
        "1 is not of type 'array'"
    ]
