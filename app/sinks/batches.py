"""How a batched subscription's events are cut into deliveries (pure).

A subscription with `batchSize` > 1 gets the events of many executions in one delivery: a
webhook POST whose body is a JSON array, or one Redis pipeline. The events of one execution
keep their order inside a delivery and across deliveries (a delivery goes only after the one
before it was answered), so cutting them in order is all that order per execution needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

# The largest `batchSize` a subscription may ask for.
MAX_BATCH = 1000
# A delivery's body stays under this many bytes (an event bigger than that goes alone).
MAX_BATCH_BYTES = 1 << 20

T = TypeVar("T")


def cut(items: Sequence[T], sizes: Sequence[int], max_items: int, max_bytes: int) -> list[list[T]]:
    """`items` in order, cut into runs of at most `max_items` whose `sizes` (bytes, one per
    item) add up to at most `max_bytes`; an item bigger than `max_bytes` is a run alone."""
    runs: list[list[T]] = []
    run: list[T] = []
    size = 0
    for item, item_size in zip(items, sizes, strict=True):
        if run and (len(run) >= max_items or size + item_size > max_bytes):
            runs.append(run)
            run, size = [], 0
        run.append(item)
        size += item_size
    if run:
        runs.append(run)
    return runs


def array_body(bodies: Sequence[bytes]) -> bytes:
    """The JSON array of events (each already JSON)."""
    return b"[" + b",".join(bodies) + b"]"
