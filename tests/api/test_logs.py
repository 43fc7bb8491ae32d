"""What the service logs: no migration chatter at startup, outgoing requests only at DEBUG."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.logs import configure_logging
from app.store.database import upgrade_schema


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("alembic", "httpx", "httpcore")}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


def loggers_in(captured: str) -> list[str]:
    return [json.loads(line)["logger"] for line in captured.splitlines() if line.startswith("{")]


@pytest.mark.usefixtures("restore_logging")
async def test_migrating_at_startup_logs_no_alembic_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(log_level="INFO", log_json=True))
    await upgrade_schema(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
    logging.getLogger("app.test").info("marker")
    names = loggers_in(capsys.readouterr().err)
    assert "app.test" in names  # the handler does write INFO lines
    assert not [n for n in names if n.startswith("alembic")], names


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(("level", "logged"), [("INFO", False), ("DEBUG", True)])
async def test_outgoing_http_requests_are_logged_only_at_debug(
    api_url: str, capsys: pytest.CaptureFixture[str], level: str, logged: bool
) -> None:
    configure_logging(Settings(log_level=level, log_json=True))
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{api_url}/healthz")).status_code == 200
    names = loggers_in(capsys.readouterr().err)
    assert ("httpx" in names) is logged, names
