"""API tests talk to a real uvicorn server (ASGITransport would buffer streams)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from tests.servers import run_server


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings


@pytest.fixture
def api_url(api_settings: Settings, engine: AsyncEngine) -> Iterator[str]:
    with run_server(create_app(api_settings)) as url:
        yield url


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as c:
        yield c
