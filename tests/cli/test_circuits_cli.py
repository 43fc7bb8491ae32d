"""`turnout circuits ls | reset` and the Python clients' `circuits()` / `reset_circuit()`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.main import create_app
from tests.cli.conftest import turnout
from tests.conftest import IsolatedSettings
from tests.servers import run_server
from tests.support.flaky_peer import FlakyPeer, flaky_peer
from turnout import AsyncClient, Client


@pytest.fixture
def peer() -> Iterator[FlakyPeer]:
    with flaky_peer() as p:
        yield p


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    settings = IsolatedSettings(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}",
        log_json=False,
        http_allow_private=True,
        circuit_failures=2,
    )
    with run_server(create_app(settings)) as url:
        yield url


async def test_cli_and_clients(server: str, peer: FlakyPeer) -> None:
    host = peer.url.removeprefix("http://")
    workflow = {
        "nodes": [{"id": "c", "type": "http.request", "params": {"url": f"{peer.url}/call"}}]
    }
    with Client(server) as client:
        assert client.circuits() == ()
        for _ in range(2):
            assert client.run(workflow, mode="immediate").error is not None
        [circuit] = client.circuits()
    assert circuit.host == host and circuit.state == "open" and circuit.failures == 2
    assert circuit.next_probe_at is not None and circuit.settings["failures"] == 2

    table = turnout("circuits", "ls", server=server)
    assert table.returncode == 0, table.stderr
    assert host in table.stdout and "open" in table.stdout
    listed = turnout("circuits", "ls", "-o", "json", server=server)
    assert [c["state"] for c in json.loads(listed.stdout)] == ["open"]

    missing = turnout("circuits", "reset", "nowhere.example", "-o", "json", server=server)
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["error"]["code"] == "circuit_not_found"
    done = turnout("circuits", "reset", host, server=server)
    assert done.returncode == 0 and f"reset {host}" in done.stdout

    async with AsyncClient(server) as aclient:
        assert await aclient.circuits() == ()
        for _ in range(2):
            await aclient.run(workflow, mode="immediate")
        assert [c.state for c in await aclient.circuits()] == ["open"]
        assert await aclient.reset_circuit("127.0.0.1") == (host,)
