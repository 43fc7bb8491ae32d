"""`turnout serve` on a non-loopback address refuses to start with auth off, unless told."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import httpx
import pytest

from tests.security.conftest import TURNOUT, make_key, turnout_db


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_open(db_url: str, **env: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TURNOUT_")}
    clean.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [TURNOUT, "serve", "--host", "0.0.0.0", "--port", str(port)],
        env={**clean, "DATABASE_URL": db_url, "TURNOUT_LOG_JSON": "false", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, port


def wait_healthy(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)  # not listening yet
    pytest.fail("turnout serve did not come up")


def stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    out, _ = process.communicate(timeout=20)
    return out


def test_serve_on_a_public_address_with_no_keys_refuses(db_url: str) -> None:
    refused = turnout_db(db_url, "serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert refused.returncode == 2
    assert "refusing to serve on 0.0.0.0 with authentication off" in refused.stderr


def test_serve_open_when_auth_off_is_said_aloud_and_warns(db_url: str) -> None:
    process, port = serve_open(db_url, TURNOUT_AUTH="off")
    wait_healthy(process, port)
    assert httpx.get(f"http://127.0.0.1:{port}/executions").status_code == 200
    assert "authentication OFF" in stop(process)


def test_serve_on_a_public_address_starts_once_a_key_exists(db_url: str) -> None:
    make_key(db_url, "root", "admin")
    process, port = serve_open(db_url)
    try:
        wait_healthy(process, port)
        assert httpx.get(f"http://127.0.0.1:{port}/executions").status_code == 401
    finally:
        stop(process)
