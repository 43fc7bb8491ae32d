"""CLI tests run the installed `turnout` command in a subprocess against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.client.conftest import embedded_url, postgres_url

__all__ = ["embedded_url", "postgres_url"]

TURNOUT = str(Path(sys.executable).with_name("turnout"))


def turnout(
    *args: str, server: str | None = None, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`turnout ARGS...` with TURNOUT_URL set to `server`; stdout and stderr captured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TURNOUT_")}
    if server:
        env["TURNOUT_URL"] = server
    return subprocess.run(
        [TURNOUT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def popen(*args: str, server: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TURNOUT_")}
    env["TURNOUT_URL"] = server
    return subprocess.Popen(
        [TURNOUT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def write(path: Path, value: Any) -> str:
    path.write_text(json.dumps(value))
    return str(path)
