"""What the client sends and how it retries, against a small real HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.cli.conftest import turnout
from tests.servers import run_server
from turnout import Client, Unavailable


class Recorder:
    """Answers 503 (with Retry-After) `failures` times, then 200; records each request."""

    def __init__(self) -> None:
        self.failures = 0
        self.requests: list[dict[str, Any]] = []

    async def execution(self, request: Request) -> JSONResponse:
        self.requests.append(dict(request.headers))
        if len(self.requests) <= self.failures:
            body = {"error": {"code": "service_unavailable", "message": "db down", "details": []}}
            return JSONResponse(body, 503, headers={"Retry-After": "0"})
        return JSONResponse({"executionId": request.path_params["id"], "status": "running"})


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, str]]:
    rec = Recorder()
    app = Starlette(routes=[Route("/execution/{id}", rec.execution)])
    with run_server(app, lifespan="off") as url:
        yield rec, url


def test_url_and_api_key_come_from_the_environment(
    recorder: tuple[Recorder, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rec, url = recorder
    monkeypatch.setenv("TURNOUT_URL", url)
    monkeypatch.setenv("TURNOUT_API_KEY", "k-123")
    with Client() as client:
        assert client.get("abc").status == "running"
    assert rec.requests[0]["authorization"] == "Bearer k-123"
    with Client(url, api_key="other") as client:
        client.get("abc")
    assert rec.requests[1]["authorization"] == "Bearer other"


def test_unavailable_is_retried_after_retry_after_a_bounded_number_of_times(
    recorder: tuple[Recorder, str],
) -> None:
    rec, url = recorder
    rec.failures = 2
    with Client(url, retries=3) as client:
        assert client.get("abc").status == "running"
    assert len(rec.requests) == 3
    rec.requests.clear()
    rec.failures = 100
    with Client(url, retries=2) as client, pytest.raises(Unavailable) as error:
        client.get("abc")
    assert len(rec.requests) == 3  # the first try and two retries
    assert error.value.retry_after == 0 and error.value.status_code == 503


def test_cli_exits_4_when_the_server_stays_unavailable(recorder: tuple[Recorder, str]) -> None:
    rec, url = recorder
    rec.failures = 100
    result = turnout("get", "abc", "-o", "json", server=url)
    assert result.returncode == 4
    assert json.loads(result.stdout)["error"]["code"] == "service_unavailable"
    assert len(rec.requests) == 4  # the first try and the default three retries
