"""The node type registry: built-ins, plugins from the `turnout.nodes` entry points, and the
extra plugin modules a process names in `TURNOUT_PLUGINS` (e.g. the benchmark's `bench.fib`)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from typing import Any

from app.nodes.base import NodeType

ENTRY_POINT_GROUP = "turnout.nodes"
PLUGINS_ENV = "TURNOUT_PLUGINS"  # comma-separated `module:attribute`, like entry point values


class NodeRegistryError(RuntimeError):
    """A node type could not be registered (duplicate name, bad plugin)."""


class NodeRegistry:
    """Maps a type name to its node type; duplicates fail loudly."""

    def __init__(self, types: Iterable[NodeType] = ()) -> None:
        self._types: dict[str, NodeType] = {}
        for node_type in types:
            self.register(node_type)

    def register(self, node_type: NodeType) -> None:
        name = getattr(node_type, "name", None)
        if not isinstance(name, str) or not name:
            raise NodeRegistryError(f"node type {node_type!r} has no name")
        if name in self._types:
            raise NodeRegistryError(f"node type '{name}' is registered twice")
        self._types[name] = node_type

    def get(self, name: str) -> NodeType | None:
        return self._types.get(name)

    def names(self) -> list[str]:
        return sorted(self._types)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[NodeType]:
        return iter(self._types.values())


def _load(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    obj: Any = importlib.import_module(module_name.strip())
    for part in attribute.strip().split(".") if attribute.strip() else ():
        obj = getattr(obj, part)
    return obj


def load_plugins(registry: NodeRegistry, extra: str | None = None) -> None:
    """Register the `turnout.nodes` entry points, then each `module:attribute` of `extra`
    (default: the `TURNOUT_PLUGINS` environment variable)."""
    found: list[tuple[str, Any]] = [
        (ep.name, ep.load) for ep in entry_points(group=ENTRY_POINT_GROUP)
    ]
    specs = os.environ.get(PLUGINS_ENV, "") if extra is None else extra
    for spec in (s.strip() for s in specs.split(",")):
        if spec:
            found.append((spec, lambda spec=spec: _load(spec)))
    for name, load in found:
        try:
            obj = load()
        except Exception as exc:  # a broken plugin must stop startup, loudly
            raise NodeRegistryError(f"cannot load node plugin '{name}': {exc}") from exc
        node_type = obj() if isinstance(obj, type) else obj
        registry.register(node_type)


def default_registry(*, plugins: bool = True) -> NodeRegistry:
    """The built-in node types, plus the installed plugins unless `plugins` is False."""
    # Imported here: the registry itself stays free of the built-ins' I/O (httpx for
    # `http.request`), so the pure core that takes a registry loads none of it.
    from app.nodes.builtin import builtin_types

    registry = NodeRegistry(builtin_types())
    if plugins:
        load_plugins(registry)
    return registry
