"""`turnout serve`: options that cannot work are refused before anything starts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from app import cli
from app.config import get_settings


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    for name in ("REDIS_URL", "TURNOUT_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


def test_serve_with_several_workers_and_no_redis_refuses(served: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(cli.app, ["serve", "--workers", "3"])
    assert result.exit_code == 2
    assert "--workers 3 needs REDIS_URL" in result.output
    assert served == []  # nothing was started


def test_serve_with_several_workers_and_redis_starts(
    served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli.app, ["serve", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert [call["workers"] for call in served] == [2]
