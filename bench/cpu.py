"""CPU time used by the processes of a workload, from /proc (Linux), to say where time goes."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

TICK_S = 1 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def cpu_seconds(pids: Iterable[int], children: bool = False) -> float:
    """User + system CPU seconds of these processes so far (vanished ones count 0), and
    with `children` that of their children that exited (reaped: cutime, cstime)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        if children:
            ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
        total += ticks * TICK_S
    return total


def pids_named(name: str) -> list[int]:
    """Processes whose command name is `name` (e.g. every `postgres` backend)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class CpuMeter:
    """CPU seconds per named group of processes between `start()` and `stop()`."""

    def __init__(self, groups: Mapping[str, Iterable[int] | str]) -> None:
        self.groups = dict(groups)
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _pids(self, group: Iterable[int] | str) -> list[int]:
        return pids_named(group) if isinstance(group, str) else list(group)

    def _read(self) -> dict[str, float]:
        """A group named by command (`postgres`) counts its exited members too, through
        their parent's children times (the postmaster reaps its backends): a backend that
        ends within the window moves its CPU there instead of taking it away."""
        return {
            name: cpu_seconds(self._pids(g), children=isinstance(g, str))
            for name, g in self.groups.items()
        }

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> None:
        end = self._read()
        self.used = {name: end[name] - self._start.get(name, 0.0) for name in end}

    def per_unit_ms(self, units: float, unit: str) -> str:
        """`client 1.2, API 2.0, ... ms of CPU per run`."""
        if units <= 0:
            return ""
        parts = [f"{name} {seconds / units * 1000:.2f}" for name, seconds in self.used.items()]
        return f"CPU per {unit} (ms): " + ", ".join(parts)
