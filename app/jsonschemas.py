"""Users' JSON Schemas: the one place validators are built. A `$ref` never leaves the document.

jsonschema's default registry fetches unknown `$ref`s with `urlopen` (network and `file:`),
synchronously and without a timeout. Here the registry retrieves nothing: only refs inside the
schema (`#`, `#/$defs/...`, `#anchor`) resolve, any other is refused when the workflow is
validated, and every validation is bounded in work so a recursive schema cannot run away.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError, ValidationError
from referencing import Registry
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

# Keyword checks one validation may make: a base plus a share per value of the data, so a
# fan-out of refs (`allOf: [{$ref: a}, {$ref: a}]`, nested) stops within a few ms, while
# the work for honest input grows with its size only (~2 checks a value is typical).
BASE_STEPS = 1_000
STEPS_PER_VALUE = 50
_REF_KEYS = ("$ref", "$dynamicRef")
# Keywords whose values are data, not schemas: a "$ref" key inside them is not a reference.
_DATA_KEYS = frozenset({"const", "enum", "default", "examples"})
Path = tuple[str | int, ...]


class SchemaUnusable(ValueError):
    """A schema cannot be used (bad ref, runaway recursion); the message completes "it ..."."""


def _retrieve(uri: str) -> Any:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # never the network, never the disk


_REGISTRY: Registry[Any] = Registry(retrieve=_retrieve)  # type: ignore[call-arg]
_local = threading.local()


class _TooCostly(Exception):
    pass


def _counted(check: Callable[..., Any]) -> Callable[..., Any]:
    def run(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        _local.left = left = _local.left - 1
        if left < 0:
            raise _TooCostly
        return check(validator, value, instance, schema)

    return run


_Counted = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    validators={k: _counted(v) for k, v in Draft202012Validator.VALIDATORS.items()},
)


def _walk(schema: Any) -> Iterator[tuple[Path, str, Any]]:
    """Every (path, key, value) of the schema's objects, iteratively, skipping data keywords."""
    stack: list[tuple[Path, Any]] = [((), schema)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, Mapping):
            for key, value in node.items():
                yield path, key, value
                if key not in _DATA_KEYS and isinstance(value, Mapping | list):
                    stack.append(((*path, key), value))
        elif isinstance(node, list):
            stack += [((*path, i), v) for i, v in enumerate(node) if isinstance(v, Mapping | list)]


def schema_problems(schema: Any) -> list[tuple[Path, str]]:
    """Why `schema` cannot be used, as (path inside it, "is/has ..." message); empty if fine."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [(tuple(exc.absolute_path), f"is not a valid JSON Schema: {exc.message}")]
    except RecursionError:
        return [((), "is not a valid JSON Schema: it is nested too deeply")]
    problems: list[tuple[Path, str]] = []
    for path, key, value in _walk(schema):
        if key in _REF_KEYS and isinstance(value, str) and not value.startswith("#"):
            problems.append(
                (
                    (*path, key),
                    f"has {key} '{value}', which is not allowed: only references inside the schema"
                    " ('#', '#/$defs/...') are resolved, nothing is fetched",
                )
            )
    if problems:
        return problems
    nested_ids = any(key == "$id" and path for path, key, _ in _walk(schema))
    if not nested_ids:  # under a nested $id, '#' means that resource: let validation judge
        resolver = _REGISTRY.resolver_with_root(DRAFT202012.create_resource(schema))
        for path, key, value in _walk(schema):
            if key in _REF_KEYS and isinstance(value, str):
                try:
                    resolver.lookup(value)
                except Unresolvable:
                    message = f"has {key} '{value}', which points to nothing in the schema"
                    problems.append(((*path, key), message))
    if problems:
        return problems
    try:
        validate(schema, None)  # resolves local refs; a runaway self-reference shows here
    except SchemaUnusable as exc:
        return [((), str(exc))]
    return []


def _build(schema: Mapping[str, Any], formats: bool) -> Any:
    checker = Draft202012Validator.FORMAT_CHECKER if formats else None
    return _Counted(schema, registry=_REGISTRY, format_checker=checker)


def _values(data: Any) -> int:
    """How many JSON values `data` holds (iteratively; containers count as one each)."""
    count, stack = 0, [data]
    while stack:
        node = stack.pop()
        count += 1
        if isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def validate(
    schema: Mapping[str, Any], data: Any, *, formats: bool = True
) -> list[ValidationError]:
    """Every way `data` breaks `schema` (Draft 2020-12); raises SchemaUnusable, never hangs."""
    outer = getattr(_local, "left", None)
    steps = BASE_STEPS + STEPS_PER_VALUE * _values(data)
    _local.left = steps
    try:
        return list(_build(schema, formats).iter_errors(data))
    except _TooCostly:
        raise SchemaUnusable(
            f"takes more than {steps} steps to validate this data"
            " (does a $ref refer to itself without end, or fan out?)"
        ) from None
    except RecursionError:
        raise SchemaUnusable("refers to itself without end") from None
    except Unresolvable as exc:
        raise SchemaUnusable(f"has an unresolvable reference: {exc}") from None
    except SchemaError as exc:
        raise SchemaUnusable(f"is not a valid JSON Schema: {exc.message}") from None
    finally:
        _local.left = outer if outer is not None else 0
