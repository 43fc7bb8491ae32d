"""The embedded default (SQLite, no Redis): the service's own process delivers."""

from __future__ import annotations

from pathlib import Path

import httpx

from app.main import create_app
from app.store.database import make_engine
from tests.conftest import IsolatedSettings
from tests.servers import run_server
from tests.sinks.conftest import ALL
from tests.sinks.test_webhooks import start_runs, stored_seqs
from tests.support.executions import wait_until
from tests.support.receiver import Receiver


async def test_embedded_service_delivers_every_event_in_order(
    tmp_path: Path, receiver: Receiver
) -> None:
    settings = IsolatedSettings(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}",
        http_allow_private=True,
        sink_poll_ms=50,
        log_json=False,
    )
    with run_server(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            made = await client.post("/subscriptions", json={**ALL, "url": receiver.url})
            assert made.status_code == 201, made.text
            stream = await client.post(
                "/subscriptions", json={"sink": "redis-stream", "stream": "s", "events": ["*"]}
            )
            assert stream.json()["error"]["details"][0]["code"] == "sink_unavailable"
            ids = await start_runs(client, 5, "immediate") + await start_runs(client, 5, "queued")

            engine = make_engine(settings.database_url)

            async def all_arrived() -> bool:
                got, want = receiver.by_execution(), await stored_seqs(engine, ids)
                return all(len(want[i]) >= 8 and got.get(i) == want[i] for i in ids)

            try:
                await wait_until(all_arrived, "every event delivered", timeout_s=30)
            finally:
                await engine.dispose()
