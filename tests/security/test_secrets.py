"""Secrets over a real server: resolved at run time, sent to a real echoing peer, and then
searched for in every table, event, log line and answer: only `***` is ever found."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from tests.conftest import TABLES
from tests.security.conftest import turnout_db
from tests.servers import run_server

SECRET_KEY = Fernet.generate_key().decode()
VALUE = "sk_live/9f8e+7d6c 5b4a"  # URL-encoded on its way through the path and query

echo = FastAPI()


@echo.post("/echo/{rest:path}")
async def echo_back(rest: str, request: Request) -> dict[str, Any]:
    """A peer that repeats the whole request, as many do in their error messages."""
    return {
        "path": rest,
        "query": str(request.url.query),
        "headers": dict(request.headers),
        "body": (await request.body()).decode(),
    }


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    with run_server(echo) as url:
        yield url


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"secret_key": SECRET_KEY})


def set_secret(db_url: str, name: str, value: str, namespace: str = "default") -> None:
    done = turnout_db(
        db_url, "secrets", "set", name, "--namespace", namespace, stdin=value + "\n",
        TURNOUT_SECRET_KEY=SECRET_KEY,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


TOKEN = "{{ secrets.API_TOKEN }}"


def workflow(echo_url: str) -> dict[str, Any]:
    return {
        "nodes": [
            {
                "id": "call",
                "type": "http.request",
                "params": {
                    "method": "POST",
                    "url": f"{echo_url}/echo/{TOKEN}?k={TOKEN}",
                    "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}"},
                    "json": {"token": "{{ secrets.API_TOKEN }}", "n": "{{ input.n }}"},
                },
            },
            {"id": "copy", "type": "transform", "params": {"seen": "{{ call.body.headers }}"}},
        ],
        "output": {"echo": "{{ call.body }}", "raw": "{{ secrets.API_TOKEN }}"},
    }


async def test_a_secret_reaches_the_peer_and_is_never_stored_shown_or_logged(
    client: httpx.AsyncClient,
    db_url: str,
    engine: AsyncEngine,
    echo_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    set_secret(db_url, "API_TOKEN", VALUE)
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []
    async with client.stream("GET", "/executions/stream") as feed:
        assert feed.status_code == 200
        ran = await client.post(
            "/workflow/run",
            json={"workflow": workflow(echo_url), "mode": "immediate", "input": {"n": 1}},
        )
    answers.append(ran.text)
    assert ran.status_code == 200, ran.text
    done = ran.json()
    assert done["status"] == "completed", done
    echoed = done["result"]["echo"]
    # The peer did get the value (masked on the way back), in the path, query, header and body.
    assert echoed["path"] == "***" and echoed["query"] == "k=***"
    assert echoed["headers"]["authorization"] == "Bearer ***"
    assert '"token":"***"' in echoed["body"].replace(" ", "")
    assert done["result"]["raw"] == "***"

    execution = done["executionId"]
    for path in (f"/execution/{execution}", "/executions", f"/ui/executions/{execution}"):
        answers.append((await client.get(path)).text)
    async with client.stream("GET", f"/execution/{execution}/stream") as stream:
        answers.append((await stream.aread()).decode())
    for answer in answers:
        assert VALUE not in answer

    async with engine.connect() as conn:
        for table in TABLES:
            rows = (await conn.execute(text(f"SELECT * FROM {table}"))).all()
            assert VALUE not in repr(rows), table
    assert VALUE not in caplog.text


async def test_an_unknown_secret_is_a_422_at_validation(
    client: httpx.AsyncClient, echo_url: str, db_url: str
) -> None:
    set_secret(db_url, "API_TOKEN", VALUE, namespace="acme")  # another namespace's
    answer = await client.post("/workflow/run", json={"workflow": workflow(echo_url)})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "workflow_invalid"
    assert error["details"][0]["code"] == "unknown_secret" and "API_TOKEN" in error["message"]


async def test_environment_fallback(
    client: httpx.AsyncClient, echo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TURNOUT_SECRET_API_TOKEN", VALUE)
    answer = await client.post(
        "/workflow/run",
        json={"workflow": workflow(echo_url), "mode": "immediate", "input": {"n": 1}},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["echo"]["headers"]["authorization"] == "Bearer ***"


async def test_a_secret_is_checked_on_every_request_even_for_a_compiled_workflow(
    client: httpx.AsyncClient, echo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The definition is compiled once per process; whether its secrets exist is not."""
    monkeypatch.setenv("TURNOUT_SECRET_API_TOKEN", VALUE)
    body = {"workflow": workflow(echo_url), "mode": "immediate", "input": {"n": 2}}
    assert (await client.post("/workflow/run", json=body)).status_code == 200
    monkeypatch.delenv("TURNOUT_SECRET_API_TOKEN")
    for _ in range(2):
        answer = await client.post("/workflow/run", json=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["details"][0]["code"] == "unknown_secret"


def test_secrets_are_encrypted_at_rest_and_listed_by_name_only(db_url: str) -> None:
    set_secret(db_url, "API_TOKEN", VALUE)
    listed = turnout_db(db_url, "secrets", "ls", "-o", "json", TURNOUT_SECRET_KEY=SECRET_KEY)
    assert '"API_TOKEN"' in listed.stdout and VALUE not in listed.stdout
    no_key = turnout_db(db_url, "secrets", "set", "X", stdin="v")
    assert no_key.returncode == 2 and "TURNOUT_SECRET_KEY" in no_key.stderr
