"""Rate limits per key (429 + Retry-After, shared through Redis) and CORS, on real servers."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from tests.security.conftest import bearer, make_key
from tests.servers import run_server


@pytest.fixture
def api_settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    return settings.model_copy(update=getattr(request, "param", {}))


LIMITED = {"rate_limit_per_s": 1.0, "rate_limit_burst": 3}


@pytest.mark.parametrize("api_settings", [LIMITED], indirect=True)
async def test_past_the_burst_a_key_gets_429_with_retry_after(
    client: httpx.AsyncClient, db_url: str
) -> None:
    busy = make_key(db_url, "busy", "read")
    calm = make_key(db_url, "calm", "read")
    answers = [await client.get("/executions", headers=bearer(busy)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 3
    # Another key has its own allowance.
    assert (await client.get("/executions", headers=bearer(calm))).status_code == 200


@pytest.mark.parametrize("api_settings", [LIMITED], indirect=True)
async def test_rate_limits_hold_across_api_replicas(
    api_settings: Settings, engine: AsyncEngine, db_url: str
) -> None:
    key = make_key(db_url, "busy", "read")
    with run_server(create_app(api_settings)) as one, run_server(create_app(api_settings)) as two:
        async with httpx.AsyncClient(timeout=30) as client:
            codes = [
                (await client.get(f"{url}/executions", headers=bearer(key))).status_code
                for url in (one, two, one, two)
            ]
    assert codes == [200, 200, 200, 429]


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    answer = await client.get("/executions", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize(
    "api_settings", [{"cors_origins": ["https://app.example"], "auth": "required"}], indirect=True
)
async def test_cors_origins_may_open_streams_from_another_page(
    client: httpx.AsyncClient, db_url: str
) -> None:
    key = make_key(db_url, "page", "read")
    preflight = await client.options(
        "/executions/stream",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization,last-event-id",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    async with client.stream(
        "GET",
        "/executions/stream",
        headers={**bearer(key), "Origin": "https://app.example"},
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["access-control-allow-origin"] == "https://app.example"
    other = await client.get("/executions", headers={"Origin": "https://evil.example"})
    assert other.status_code == 401 and "access-control-allow-origin" not in other.headers
