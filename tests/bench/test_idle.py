"""`python -m bench.idle`: an idle worker of this checkout, measured for a second."""

from __future__ import annotations

from bench.idle import measure
from tests.conftest import PG_BASE_URL


async def test_an_idle_worker_costs_little(redis_url: str) -> None:
    found = await measure(PG_BASE_URL, redis_url, seconds=2.0)
    assert set(found) == {"worker % of a core", "Redis % of a core"}
    # Polling every 2 ms cost ~18 % of a core here; idle, it reads its queue twice a second.
    assert found["worker % of a core"] < 10.0, found
