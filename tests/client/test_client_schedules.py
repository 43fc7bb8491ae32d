"""The clients' schedule methods against a real embedded server."""

from __future__ import annotations

import pytest

from turnout import AsyncClient, Client, Schedule, ValidationFailed

WORKFLOW = {
    "name": "digest",
    "version": "1",
    "nodes": [{"id": "a", "type": "transform", "params": {"n": 1}}],
}


def test_sync_client_creates_lists_pauses_resumes_and_deletes(embedded_url: str) -> None:
    with Client(embedded_url) as client:
        client.register(WORKFLOW)
        made = client.create_schedule(
            "digest", cron="0 7 * * *", timezone="Asia/Tokyo", tags=["daily"], overlap="allow_all"
        )
        assert isinstance(made, Schedule) and made.cron == "0 7 * * *"
        assert len(made.next_fires) == 5 and made.next_fires[0].hour == 22  # 07:00 JST in UTC
        assert [s.id for s in client.schedules()] == [made.id]
        assert client.schedules(workflow="other") == ()
        assert client.pause_schedule(made.id).paused is True
        assert client.resume_schedule(made.id).paused is False
        assert client.update_schedule(made.id, every_ms=60_000).every_ms == 60_000
        assert client.schedule(made.id).cron is None
        with pytest.raises(ValidationFailed) as bad:
            client.create_schedule("digest", cron="0 25 * * *")
        assert [p.field for p in bad.value.problems] == ["cron"]
        client.delete_schedule(made.id)
        assert client.schedules() == ()


async def test_async_client_does_the_same(embedded_url: str) -> None:
    async with AsyncClient(embedded_url) as client:
        await client.register(WORKFLOW)
        made = await client.create_schedule("digest", every_ms=3_600_000, input={"x": 1})
        assert made.every_ms == 3_600_000 and made.input == {"x": 1}
        assert [s.id for s in await client.schedules()] == [made.id]
        assert (await client.pause_schedule(made.id)).paused
        assert not (await client.resume_schedule(made.id)).paused
        assert (await client.schedule(made.id)).workflow == "digest"
        await client.delete_schedule(made.id)
        assert await client.schedules() == ()
