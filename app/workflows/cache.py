"""A process-wide cache of compiled workflows: the same definition is compiled once.

Every queued run compiles the definition its row holds, and every submission compiles the
one it names; most are the same few definitions again and again. A compiled workflow is
never changed once built (the runner, the analyzer and the nodes only read it; templates
share their static parts and say so), so one can serve every run of its definition.

The key is a digest of the definition's JSON text as given (key order included: it is the
order of a step's rendered params, hence of its output), the registry and `max_nodes`.
Only successes are kept: an invalid definition is compiled, and fails, on every call.
Registering a node type later cannot change a success (types are only added, never
replaced, and a success resolved every type it names), so the registry's identity is
enough. Checks that depend on more than the definition (a namespace's secrets, the input)
are the caller's, every time."""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from app.nodes.registry import NodeRegistry
from app.workflows.graph import CompiledWorkflow, compile_workflow

# Bounds: entries, and the JSON characters of their definitions together. A compiled
# workflow takes some 30-50 times its JSON size in memory (nodes, templates, the models),
# so the budget holds about 25 MB at worst; a definition larger than it is not kept.
MAX_ENTRIES = 1024
MAX_CHARS = 512 * 1024

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False)

Key = tuple[bytes, int]  # (digest of the JSON text, max_nodes)


class _Entries:
    """The least recently used entries of one registry, weighed by their JSON size."""

    def __init__(self) -> None:
        self.items: OrderedDict[Key, tuple[CompiledWorkflow, int]] = OrderedDict()
        self.chars = 0
        self.lock = threading.Lock()

    def get(self, key: Key) -> CompiledWorkflow | None:
        with self.lock:
            found = self.items.get(key)
            if found is None:
                return None
            self.items.move_to_end(key)
            return found[0]

    def put(self, key: Key, compiled: CompiledWorkflow, chars: int) -> None:
        if chars > MAX_CHARS:
            return
        with self.lock:
            old = self.items.pop(key, None)
            if old is not None:
                self.chars -= old[1]
            self.items[key] = (compiled, chars)
            self.chars += chars
            while len(self.items) > MAX_ENTRIES or self.chars > MAX_CHARS:
                _, (_, dropped) = self.items.popitem(last=False)
                self.chars -= dropped


_caches: weakref.WeakKeyDictionary[NodeRegistry, _Entries] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _entries(registry: NodeRegistry) -> _Entries:
    entries = _caches.get(registry)
    if entries is None:
        with _caches_lock:
            entries = _caches.setdefault(registry, _Entries())
    return entries


def definition_key(definition: Mapping[str, Any], max_nodes: int) -> tuple[Key, int] | None:
    """The cache key of a definition and its JSON size; None when it is not plain JSON
    (a NaN, an object json cannot write): such a definition is compiled every time."""
    try:
        text = _ENCODER.encode(definition)
    except (TypeError, ValueError):
        return None
    return (hashlib.sha256(text.encode()).digest(), max_nodes), len(text)


def compile_cached(
    definition: Mapping[str, Any], registry: NodeRegistry, *, max_nodes: int
) -> CompiledWorkflow:
    """`compile_workflow`, once per distinct definition: the same value (shared, do not
    change it) for the same definition; raises as `compile_workflow` does, every time."""
    keyed = definition_key(definition, max_nodes)
    if keyed is None:
        return compile_workflow(definition, registry, max_nodes=max_nodes)
    key, chars = keyed
    entries = _entries(registry)
    compiled = entries.get(key)
    if compiled is None:
        compiled = compile_workflow(definition, registry, max_nodes=max_nodes)
        entries.put(key, compiled, chars)
    return compiled


def clear() -> None:
    """Forget every compiled workflow (tests)."""
    with _caches_lock:
        _caches.clear()
