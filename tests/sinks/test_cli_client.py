"""`turnout subscriptions ...` (a subprocess) and the clients' methods, on an embedded server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.main import create_app
from tests.cli.conftest import turnout
from tests.conftest import IsolatedSettings
from tests.servers import run_server
from tests.sinks.conftest import PIPELINE
from tests.support.executions import wait_until
from tests.support.receiver import Receiver
from turnout import AsyncClient, Client, NotFound


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    settings = IsolatedSettings(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}",
        http_allow_private=True,
        sink_poll_ms=50,
        sink_retry_base_ms=10,
        sink_max_attempts=1,
        log_json=False,
    )
    with run_server(create_app(settings)) as url:
        yield url


async def test_the_cli_creates_lists_shows_redelivers_and_deletes(
    server: str, receiver: Receiver
) -> None:
    made = turnout(
        "subscriptions", "create", "--sink", "webhook", "--url", receiver.url,
        "-e", "execution.completed", "-o", "json", server=server,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    sub = json.loads(made.stdout)
    assert sub["secret"].startswith("whsec_")
    table = turnout("subscriptions", "ls", server=server)
    assert sub["id"] in table.stdout and "execution.completed" in table.stdout
    shown = turnout("subscriptions", "get", sub["id"], "-o", "json", server=server)
    assert json.loads(shown.stdout)["url"] == receiver.url

    receiver.status = 500
    with Client(server) as client:
        client.run(PIPELINE, mode="immediate")

    def dead() -> bool:
        found = turnout("subscriptions", "deliveries", sub["id"], "--status", "dead", "-o", "json",
                        server=server)  # fmt: skip
        return bool(json.loads(found.stdout))

    await wait_until(dead, "a dead delivery", timeout_s=20)
    [delivery] = json.loads(
        turnout("subscriptions", "deliveries", sub["id"], "-o", "json", server=server).stdout
    )
    receiver.status = 200
    again = turnout("subscriptions", "redeliver", sub["id"], str(delivery["id"]), server=server)
    assert again.returncode == 0, again.stderr
    assert delivery["eventId"] in again.stdout
    await wait_until(lambda: len(receiver.received) == 1, "redelivered", timeout_s=20)

    gone = turnout("subscriptions", "delete", sub["id"], server=server)
    assert gone.returncode == 0, gone.stderr
    missing = turnout("subscriptions", "get", sub["id"], server=server)
    assert missing.returncode != 0 and "subscription" in missing.stderr
    bad = turnout("subscriptions", "create", "--sink", "webhook", "-e", "*", server=server)
    assert bad.returncode == 2, bad.stderr  # no url: the server's 422


async def test_sync_and_async_clients_manage_subscriptions(server: str, receiver: Receiver) -> None:
    with Client(server) as client:
        made = client.create_subscription("webhook", ["*"], url=receiver.url, workflow="x")
        assert made["secret"]
        assert [s["id"] for s in client.subscriptions()] == [made["id"]]
        changed = client.update_subscription(made["id"], workflow="pipeline")
        assert changed["workflow"] == "pipeline"
        client.run(PIPELINE, mode="immediate")
    await wait_until(lambda: len(receiver.received) >= 8, "delivered", timeout_s=20)
    async with AsyncClient(server) as aio:
        found = await aio.subscription(made["id"])
        assert found["deliveries"].get("delivered", 0) >= 8
        items = [d async for d in aio.deliveries(made["id"], page_size=3)]
        assert sum(d["events"] for d in items) == len(receiver.received)
        assert len(items) < len(receiver.received)  # a delivery per commit, not per event
        assert [d["id"] for d in items] == sorted((d["id"] for d in items), reverse=True)
        redone = await aio.redeliver(made["id"], items[0]["id"])
        assert redone["status"] == "pending"
        await aio.delete_subscription(made["id"])
        with pytest.raises(NotFound):
            await aio.subscription(made["id"])


async def test_a_batched_subscription_from_the_cli_and_the_client(
    server: str, receiver: Receiver
) -> None:
    made = turnout(
        "subscriptions", "create", "--sink", "webhook", "--url", receiver.url, "-e", "*",
        "--batch-size", "5", "-o", "json", server=server,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    sub = json.loads(made.stdout)
    assert sub["batchSize"] == 5
    too_big = turnout(
        "subscriptions", "create", "--sink", "webhook", "--url", receiver.url, "-e", "*",
        "--batch-size", "1001", server=server,
    )  # fmt: skip
    assert too_big.returncode == 2
    with Client(server) as client:
        client.run(PIPELINE, mode="immediate")  # on SQLite: the embedded process delivers

        def all_nine() -> bool:
            with receiver.lock:
                return sum(len(json.loads(r.body)) for r in receiver.received) >= 9

        await wait_until(all_nine, "the run's events, in arrays", timeout_s=20)
        with receiver.lock:
            batches = [json.loads(r.body) for r in receiver.received]
        assert all(isinstance(b, list) and len(b) <= 5 for b in batches)
        assert [e["seq"] for b in batches for e in b] == list(range(1, 10))
        assert client.update_subscription(sub["id"], batch_size=1)["batchSize"] == 1
    async with AsyncClient(server) as aio:
        made_async = await aio.create_subscription(
            "webhook", ["step.*"], url=receiver.url, batch_size=50
        )
        assert made_async["batchSize"] == 50
