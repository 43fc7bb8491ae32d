"""The observability tests talk to a real uvicorn, like the API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.database import make_engine, upgrade_schema
from tests.api.conftest import api_settings, api_url, client

__all__ = ["api_settings", "api_url", "client"]


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'observability.db'}"
    await upgrade_schema(url)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()
