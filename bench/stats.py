"""Samples, targets and the summary of one measured metric."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["max", "min", "ratio_max", "ratio_min"]


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile (p95 of 20 samples is the 19th smallest)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Target:
    """A goal on the median: an absolute bound, or a bound on the ratio to the baseline."""

    kind: Kind
    value: float
    label: str

    def met(self, median: float, ratio: float | None) -> bool | None:
        if self.kind in ("ratio_max", "ratio_min"):
            if ratio is None:
                return None
            return ratio <= self.value if self.kind == "ratio_max" else ratio >= self.value
        return median <= self.value if self.kind == "max" else median >= self.value


@dataclass
class Metric:
    """One row of the table: raw samples, and optionally a baseline and targets."""

    workload: str
    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    baseline: Metric | None = None
    targets: tuple[Target, ...] = ()
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def p95(self) -> float | None:
        return percentile(self.samples, 95) if self.samples else None

    @property
    def ratio(self) -> float | None:
        base = self.baseline.median if self.baseline is not None else None
        median = self.median
        if base is None or median is None or base == 0:
            return None
        return median / base

    def verdict(self) -> bool | None:
        """True when every target is met, False when one is missed, None when unknown."""
        median = self.median
        if median is None or not self.targets:
            return None
        results = [t.met(median, self.ratio) for t in self.targets]
        if any(r is False for r in results):
            return False
        return None if any(r is None for r in results) else True

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "metric": self.name,
            "unit": self.unit,
            "samples": self.samples,
            "median": self.median,
            "p95": self.p95,
            "baseline": (
                {"workload": self.baseline.workload, "metric": self.baseline.name}
                if self.baseline is not None
                else None
            ),
            "ratio": self.ratio,
            "targets": [t.label for t in self.targets],
            "met": self.verdict(),
            "note": self.note,
        }
