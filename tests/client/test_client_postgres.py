"""The Python client against Turnout on Postgres and Redis, with an arq worker process."""

from __future__ import annotations

from tests.client.conftest import HELLO, delays
from tests.support.proxy import cutting_proxy
from turnout import AsyncClient, Client


def test_queued_run_on_a_worker_streams_through_cuts(postgres_url: str) -> None:
    with Client(postgres_url) as direct:
        assert direct.run(HELLO, {"name": "pg"}).result == {"message": "Hello, pg!"}
        execution = direct.run(delays(10), mode="queued", priority=5, tags=["pg"])
        with cutting_proxy(postgres_url, cut_after=600) as (proxy, url), Client(url) as client:
            seen = [(e.seq, e.type, e.step_key) for e in client.stream(execution.id)]
        stored = [(e.seq, e.type, e.step_key) for e in direct.stream(execution.id)]
        final = direct.wait(execution.id, timeout=30)
    assert proxy.cuts >= 3
    assert seen == stored
    assert [seq for seq, _, _ in seen] == list(range(1, len(seen) + 1))
    assert [t for _, t, _ in seen].count("step.completed") == 10
    assert final.status == "completed" and final.mode == "queued" and final.priority == 5


async def test_async_stream_resumes_through_cuts(postgres_url: str) -> None:
    async with AsyncClient(postgres_url) as direct:
        execution = await direct.run(delays(6), mode="queued")
        with cutting_proxy(postgres_url, cut_after=500) as (proxy, url):
            async with AsyncClient(url) as client:
                seen = [e.seq async for e in client.stream(execution.id)]
        assert proxy.cuts >= 2
        assert seen == list(range(1, len(seen) + 1))
        assert (await direct.get(execution.id)).status == "completed"
        assert (await direct.wait(execution.id, timeout=5)).progress.done == 6
