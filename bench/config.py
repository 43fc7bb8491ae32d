"""How much each workload does (full or quick), and the progress lines printed while running."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "PEER")
DEFAULT_WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7")

# W4's clients posting one run per request back to back. Fewer do not keep 1 API + 1 worker
# busy: on 2 cores (2026-12-07, one 5 s window each) 8 clients got 416-481 runs/s with a
# core to spare, 16 got 520, 32 621-706, 64 701, 128 629.
W4_SUBMITTERS = 32
SUBMITTERS_HELP = f"W4's clients, one run per request (default {W4_SUBMITTERS})"


def positive(value: str) -> int:
    """An argparse type: a whole number of at least 1."""
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


@dataclass(frozen=True)
class Sizes:
    """Samples per repeat and problem sizes; `quick` keeps the whole run under 2 minutes."""

    repeat: int
    w1_requests: int
    w1_warmup: int
    w2_runs: int
    w2_warmup: int
    w3_runs: int
    w4_window_s: float
    w4_submitters: int
    w5_items: int
    w6_nodes: int
    w7_seconds: int
    peer_w2_runs: int
    peer_w3_runs: int

    @classmethod
    def for_mode(cls, quick: bool, repeat: int | None, submitters: int | None = None) -> Sizes:
        clients = submitters or W4_SUBMITTERS
        if quick:
            return cls(
                repeat=repeat or 1, w1_requests=50, w1_warmup=10, w2_runs=10, w2_warmup=2,
                w3_runs=2, w4_window_s=5.0, w4_submitters=clients, w5_items=1000, w6_nodes=10_000,
                w7_seconds=2, peer_w2_runs=5, peer_w3_runs=1,
            )  # fmt: skip
        return cls(
            repeat=repeat or 3, w1_requests=200, w1_warmup=20, w2_runs=30, w2_warmup=3,
            w3_runs=3, w4_window_s=10.0, w4_submitters=clients, w5_items=1000, w6_nodes=10_000,
            w7_seconds=5, peer_w2_runs=10, peer_w3_runs=3,
        )  # fmt: skip


class Progress:
    """Timestamped progress lines on stderr, so the table on stdout stays clean."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, message: str) -> None:
        elapsed = time.monotonic() - self.start
        print(f"[{elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)
