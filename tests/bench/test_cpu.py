"""The bench's CPU meter: a process that exits inside a window keeps its CPU counted."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.cpu import cpu_seconds

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"


def test_children_that_exited_count_through_their_parent() -> None:
    me = [os.getpid()]
    before_own, before_all = cpu_seconds(me), cpu_seconds(me, children=True)
    subprocess.run([sys.executable, "-c", BURN], check=True)  # reaped: its CPU moves to us
    own = cpu_seconds(me) - before_own
    with_children = cpu_seconds(me, children=True) - before_all
    assert with_children - own >= 0.25
    assert own < 0.25
