"""Client tests talk to a real Turnout: the embedded default (SQLite, in-process queue), or
Postgres + Redis with a worker in its own process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.main import create_app
from tests.conftest import IsolatedSettings
from tests.servers import run_server
from tests.support.workers import worker_process


def delays(n: int, ms: int = 20) -> dict[str, Any]:
    """A chain of `n` short delays: long enough to be cut mid-run, many events."""
    nodes: list[dict[str, Any]] = [{"id": "d0", "type": "delay", "params": {"ms": ms}}]
    nodes += [
        {"id": f"d{i}", "type": "delay", "params": {"ms": ms}, "dependsOn": [f"d{i - 1}"]}
        for i in range(1, n)
    ]
    return {"name": f"delays{n}", "nodes": nodes}


HELLO: dict[str, Any] = {
    "name": "hello",
    "nodes": [
        {"id": "greet", "type": "transform", "params": {"text": "Hello, {{ input.name }}!"}},
    ],
    "output": {"message": "{{ greet.text }}"},
}

APPROVAL: dict[str, Any] = {
    "name": "approval",
    "nodes": [
        {
            "id": "approve",
            "type": "human.input",
            "params": {
                "prompt": "ok?",
                "schema": {"type": "object", "required": ["approved"]},
            },
        }
    ],
    "output": {"approved": "{{ approve.approved }}"},
}


@pytest.fixture
def embedded_url(tmp_path: Path) -> Iterator[str]:
    """Turnout with nothing configured: a SQLite file and the in-process worker."""
    settings = IsolatedSettings(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}", log_json=False
    )
    with run_server(create_app(settings)) as url:
        yield url


@pytest.fixture
def postgres_url(settings: Settings) -> Iterator[str]:
    """Turnout on Postgres and Redis, with one arq worker process on the test's queue."""
    with run_server(create_app(settings)) as url, worker_process(settings):
        yield url
