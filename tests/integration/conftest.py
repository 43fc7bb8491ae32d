"""Fixtures of the integration tests: the repository on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.database import make_engine, upgrade_schema
from app.store.repository import Repository


@pytest.fixture(params=["postgresql", "sqlite"])
async def repo(
    request: pytest.FixtureRequest, engine: AsyncEngine, tmp_path: Path
) -> AsyncIterator[Repository]:
    if request.param == "postgresql":
        yield Repository(engine)
        return
    url = f"sqlite+aiosqlite:///{tmp_path / 'repo.db'}"
    await upgrade_schema(url)
    sqlite = make_engine(url)
    yield Repository(sqlite)
    await sqlite.dispose()
