"""The dashboard's event sinks pages: subscriptions, their deliveries, recent failures."""

from __future__ import annotations

import httpx

from app.config import Settings
from tests.sinks.conftest import ALL
from tests.sinks.test_webhooks import start_runs, subscribe
from tests.support.executions import wait_until
from tests.support.receiver import Receiver
from tests.support.workers import running_worker


async def test_the_pages_list_subscriptions_deliveries_and_failures(
    client: httpx.AsyncClient, receiver: Receiver, sink_settings: Settings
) -> None:
    good = await subscribe(client, url=receiver.url, description="billing", **ALL)
    bad = await subscribe(
        client, url="http://127.0.0.1:9/refused", sink="webhook", events=["execution.completed"]
    )
    settings = sink_settings.model_copy(update={"sink_max_attempts": 1})
    async with running_worker(settings):
        [execution_id] = await start_runs(client, 1, "immediate")

        async def failing() -> bool:
            found = (await client.get(f"/subscriptions/{bad['id']}")).json()
            return bool(found["status"] == "failing") and len(receiver.received) >= 8

        await wait_until(failing, "one failing, one delivered", timeout_s=20)
    page = await client.get("/ui/subscriptions")
    assert page.status_code == 200
    html = page.text
    assert f'data-subscription-id="{good["id"]}" data-status="active"' in html
    assert f'data-subscription-id="{bad["id"]}" data-status="failing"' in html
    assert "billing" in html and receiver.url in html
    assert f"{execution_id}:" in html and 'data-status="dead"' in html  # the failure
    assert "ConnectError" in html
    detail = await client.get(f"/ui/subscriptions/{good['id']}", params={"status": "delivered"})
    assert detail.status_code == 200
    listed = (await client.get(f"/subscriptions/{good['id']}/deliveries")).json()["items"]
    assert sum(d["events"] for d in listed) == len(receiver.received)
    assert detail.text.count('data-status="delivered"') == len(listed)
    assert any(d["events"] > 1 for d in listed)
    assert "more</td>" in detail.text  # a delivery of several events says so
    missing = await client.get("/ui/subscriptions/00000000-0000-0000-0000-000000000009")
    assert missing.status_code == 404


async def test_the_pages_show_a_subscriptions_batch_size(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    batched = await subscribe(client, url=receiver.url, batchSize=25, **ALL)
    await subscribe(client, url=receiver.url, **ALL)
    listing = (await client.get("/ui/subscriptions")).text
    assert listing.count("(batches of 25)") == 1
    detail = (await client.get(f"/ui/subscriptions/{batched['id']}")).text
    assert "up to 25 events per delivery (a JSON array)" in detail
