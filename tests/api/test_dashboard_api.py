"""What the dashboard adds to the API: `/` -> `/ui/`, `?q=` on the list, `GET /queue`,
and pages that answer bad filters with a message (never a 500)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from app.config import Settings
from tests.support.workers import worker_process

ONE = {"nodes": [{"id": "a", "type": "noop", "params": {}}]}


async def queued(client: httpx.AsyncClient, **headers: str) -> str:
    response = await client.post(
        "/workflow/run", json={"workflow": ONE, "mode": "queued"}, headers=headers
    )
    assert response.status_code == 202, response.text
    return str(response.json()["executionId"])


async def test_root_redirects_to_the_dashboard(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/ui/"
    page = await client.get("/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")


async def test_free_text_finds_executions_by_id_prefix_and_idempotency_key(
    client: httpx.AsyncClient,
) -> None:
    by_key = await queued(client, **{"Idempotency-Key": "order-7731-checkout"})
    other = await queued(client)

    async def found(q: str) -> set[str]:
        response = await client.get("/executions", params={"q": q, "limit": 500})
        assert response.status_code == 200, response.text
        return {item["executionId"] for item in response.json()["items"]}

    assert await found("7731") == {by_key}
    assert await found(other[:13]) == {other}
    assert await found("100%_") == set()  # LIKE wildcards are taken literally
    page = await client.get("/ui/", params={"q": "7731"})
    assert f'data-execution-id="{by_key}"' in page.text
    assert f'data-execution-id="{other}"' not in page.text


async def test_a_bad_time_filter_or_cursor_is_a_message_on_the_page(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/ui/", params={"after": "yesterday"})
    assert page.status_code == 200
    assert "From: &#39;yesterday&#39; is not a date and time" in page.text
    page = await client.get("/ui/", params={"cursor": "not-a-cursor"})
    assert page.status_code == 200
    assert "invalid cursor" in page.text


async def _queue(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/queue")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_queue_lists_pending_positions_and_live_workers(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    first, second = await queued(client), await queued(client)
    body = await _queue(client)
    positions = {i["executionId"]: i["queuePosition"] for i in body["pending"]}
    assert positions[first] < positions[second]
    assert body["workers"] == []  # no worker process runs yet (the API is not one)
    assert len(body["throughput"]["perSecond"]) == 60
    with worker_process(settings) as proc:
        deadline = time.monotonic() + 10
        while not (workers := (await _queue(client))["workers"]):
            assert time.monotonic() < deadline, "no worker heartbeat within 10 s"
            await asyncio.sleep(0.1)
        assert workers[0]["role"] == "worker"
        assert f":{proc.pid}:" in workers[0]["owner"]
        while (await client.get(f"/execution/{second}")).json()["status"] != "completed":
            assert time.monotonic() < deadline + 20
            await asyncio.sleep(0.05)
    # A worker that stops cleanly leaves the list at once; the runs it did are counted.
    body = await _queue(client)
    assert body["workers"] == []
    assert sum(body["throughput"]["perSecond"]) > 0
    page = await client.get("/ui/queue")
    assert "Workers alive (0)" in page.text


async def test_the_list_pages_by_cursor_and_filters_by_tag_and_status(
    client: httpx.AsyncClient,
) -> None:
    tag = f"paging-{time.monotonic_ns()}"
    made = []
    for _ in range(53):
        response = await client.post(
            "/workflow/run",
            json={"workflow": ONE, "mode": "queued", "options": {"tags": [tag]}},
        )
        made.append(response.json()["executionId"])
    await client.post(f"/execution/{made[0]}/cancel")

    def rows(html: str) -> list[str]:
        return [part.split('"', 1)[0] for part in html.split('data-execution-id="')[1:]]

    first = await client.get("/ui/", params={"tag": tag})
    assert rows(first.text) == made[::-1][:50]  # newest first, 50 a page
    older = first.text.split('rel="next"')[0].rsplit('href="', 1)[1].split('"', 1)[0]
    second = await client.get(older.replace("&amp;", "&"))
    assert rows(second.text) == made[::-1][50:]
    assert 'rel="next"' not in second.text
    cancelled = await client.get("/ui/", params={"tag": tag, "status": "cancelled"})
    assert rows(cancelled.text) == [made[0]]
    assert 'data-status="cancelled"' in cancelled.text
