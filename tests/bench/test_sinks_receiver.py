"""The bench's webhook receiver counts events from the header and parses bodies later."""

from __future__ import annotations

import json

import httpx

from bench.sinks import Receiver


async def test_it_counts_each_posts_events_and_parses_them_when_read() -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        async with httpx.AsyncClient() as client:
            one = {"executionId": "x", "seq": 1, "type": "execution.created"}
            two = [{**one, "seq": 2}, {**one, "seq": 3}]
            assert (await client.post(receiver.url, content=json.dumps(one))).status_code == 204
            batch = await client.post(
                receiver.url, content=json.dumps(two), headers={"Turnout-Event-Count": "2"}
            )
            assert batch.status_code == 204
        assert (receiver.posts, receiver.events) == (2, 3)
        assert [e["seq"] for _, e in receiver.received] == [1, 2, 3]
        receiver.clear()
        assert (receiver.events, receiver.received) == (0, [])
    finally:
        await receiver.close()
