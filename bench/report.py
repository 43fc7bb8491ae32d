"""The table (Markdown, so it pastes into the README) and the JSON of a run."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.stats import Metric


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def _verdict(metric: Metric) -> str:
    met = metric.verdict()
    if met is None:
        return ""
    return ("met: " if met else "MISSED: ") + ", ".join(t.label for t in metric.targets)


def table(metrics: list[Metric]) -> str:
    head = "| workload | metric | n | median | p95 | unit | ratio to baseline | target |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for m in metrics:
        ratio = f"{m.ratio:.2f}x" if m.ratio is not None else ""
        lines.append(
            f"| {m.workload} | {m.name} | {len(m.samples)} | {_num(m.median)} | {_num(m.p95)} "
            f"| {m.unit} | {ratio} | {_verdict(m)} |"
        )
    notes = [f"- {m.workload} {m.name}: {m.note}" for m in metrics if m.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def machine() -> dict[str, Any]:
    memory_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_json(path: Path, metrics: list[Metric], argv: list[str]) -> None:
    body = {"machine": machine(), "command": argv, "metrics": [m.to_json() for m in metrics]}
    path.write_text(json.dumps(body, indent=2))


def write_results(results: dict[str, Any], path: Path | None) -> None:
    """A side benchmark's results: JSON on stdout, and in `path` when given."""
    text = json.dumps(results, indent=2)
    print(text)
    if path:
        path.write_text(text)
