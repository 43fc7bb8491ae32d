"""The pure core loads no I/O library: importing it in a fresh interpreter pulls in neither
httpx, SQLAlchemy, Redis nor the process settings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PURE_CORE = (
    "app.execution.complexity",
    "app.workflows.graph",
    "app.workflows.cache",
    "app.engine.runner",
    "app.circuits.policy",
    "app.sinks.patterns",
    "app.sinks.retry",
    "app.sinks.signing",
)
IO_MODULES = ("httpx", "sqlalchemy", "redis", "arq", "app.config")


@pytest.mark.parametrize("module", PURE_CORE)
def test_importing_the_pure_core_loads_no_io_library(module: str) -> None:
    script = (
        f"import json, sys, {module}; "
        f"print(json.dumps([m for m in {list(IO_MODULES)!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) == []
