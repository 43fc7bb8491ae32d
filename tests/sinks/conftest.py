"""Event sink tests: a real API server, real workers, a real receiver, real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from tests.servers import run_server
from tests.support.receiver import Receiver, webhook_receiver

ALL = {"sink": "webhook", "events": ["*"]}
PIPELINE = {
    "name": "pipeline",
    "nodes": [
        {"id": "a", "type": "transform", "params": {"value": 1}},
        {"id": "b", "type": "transform", "params": {"value": 2}, "dependsOn": ["a"]},
        {"id": "c", "type": "transform", "params": {"value": 3}, "dependsOn": ["b"]},
    ],
}


@pytest.fixture
def sink_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"sink_retry_base_ms": 20, "sink_retry_max_ms": 200, "sink_poll_ms": 50}
    )


@pytest.fixture
def api_url(sink_settings: Settings, engine: AsyncEngine) -> Iterator[str]:
    with run_server(create_app(sink_settings)) as url:
        yield url


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


@pytest.fixture
def api_settings_url(sink_settings: Settings, db_url: str, engine: AsyncEngine) -> Iterator[str]:
    """A server of its own: auth turns on once the test has made its keys."""
    with run_server(create_app(sink_settings)) as url:
        yield url
