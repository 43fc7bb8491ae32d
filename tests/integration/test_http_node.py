"""`http.request` against a real uvicorn server on 127.0.0.1: no mocked HTTP peer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, StreamingResponse

from app.errors import StepError
from app.nodes.base import NodeContext, Services
from app.nodes.http import HttpParams, HttpRequestNode
from tests.conftest import IsolatedSettings
from tests.servers import run_server

peer = FastAPI()
hits: list[str] = []


@peer.middleware("http")
async def count_hits(request: Request, call_next: Any) -> Any:
    hits.append(request.url.path)
    return await call_next(request)


@peer.get("/json")
async def json_route() -> dict[str, Any]:
    return {"hello": "world", "n": [1, 2]}


@peer.api_route("/inspect", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def inspect(request: Request) -> dict[str, Any]:
    raw = await request.body()
    return {
        "method": request.method,
        "query": list(request.query_params.multi_items()),
        "headers": dict(request.headers),
        "body": raw.decode(),
    }


@peer.get("/status/{code}")
async def status(code: int) -> Response:
    return PlainTextResponse(f"status {code}", status_code=code)


@peer.get("/text")
async def text() -> Response:
    return Response("héllo".encode("latin-1"), media_type="text/plain; charset=latin-1")


@peer.get("/slow")
async def slow(s: float = 1.0) -> dict[str, bool]:
    await asyncio.sleep(s)
    return {"slept": True}


@peer.get("/big")
async def big(n: int, stream: bool = False) -> Response:
    if not stream:
        return PlainTextResponse("x" * n)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(n // 100):
            yield b"x" * 100

    return StreamingResponse(chunks(), media_type="text/plain")  # chunked: no Content-Length


@peer.api_route("/redirect", methods=["GET", "POST"])
async def redirect(to: str, code: int = 302) -> Response:
    return RedirectResponse(to, status_code=code)


@peer.get("/chain/{n}")
async def chain(n: int) -> Response:
    if n == 0:
        return JSONResponse({"done": True})
    return RedirectResponse(f"/chain/{n - 1}", status_code=302)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with run_server(peer) as url:
        yield url


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False) as http:
        yield http


def context(client: httpx.AsyncClient, **settings: Any) -> NodeContext:
    options: dict[str, Any] = {"http_allow_private": True, **settings}
    return NodeContext(
        execution_id="exec-1",
        node_id="fetch",
        step_key="fetch",
        attempt=1,
        services=Services(IsolatedSettings(**options), client),
        scope={},
    )


async def call(client: httpx.AsyncClient, params: dict[str, Any], **settings: Any) -> Any:
    return await HttpRequestNode().run(
        context(client, **settings), HttpParams.model_validate(params)
    )


async def failure(client: httpx.AsyncClient, params: dict[str, Any], **settings: Any) -> StepError:
    with pytest.raises(StepError) as info:
        await call(client, params, **settings)
    return info.value


async def test_get_json_returns_status_headers_and_parsed_body(
    client: httpx.AsyncClient, base_url: str
) -> None:
    output = await call(client, {"url": f"{base_url}/json"})
    assert output["status"] == 200
    assert output["headers"]["content-type"] == "application/json"
    assert output["body"] == {"hello": "world", "n": [1, 2]}


async def test_text_body_is_decoded_with_its_charset(
    client: httpx.AsyncClient, base_url: str
) -> None:
    assert (await call(client, {"url": f"{base_url}/text"}))["body"] == "héllo"


async def test_post_sends_json_body(client: httpx.AsyncClient, base_url: str) -> None:
    output = await call(
        client, {"method": "POST", "url": f"{base_url}/inspect", "json": {"a": [1, "é"]}}
    )
    seen = output["body"]
    assert seen["method"] == "POST"
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["body"] == '{"a": [1, "é"]}'


async def test_raw_body_is_sent_as_given(client: httpx.AsyncClient, base_url: str) -> None:
    params = {
        "method": "PUT",
        "url": f"{base_url}/inspect",
        "body": "a=1",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    }
    seen = (await call(client, params))["body"]
    assert (seen["method"], seen["body"]) == ("PUT", "a=1")
    assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"


async def test_query_is_merged_into_the_url(client: httpx.AsyncClient, base_url: str) -> None:
    params = {
        "url": f"{base_url}/inspect?keep=1",
        "query": {"s": "a b", "n": 2, "f": 1.5, "yes": True, "many": [1, "x"]},
    }
    seen = (await call(client, params))["body"]
    assert seen["query"] == [
        ["keep", "1"],
        ["s", "a b"],
        ["n", "2"],
        ["f", "1.5"],
        ["yes", "true"],
        ["many", "1"],
        ["many", "x"],
    ]


async def test_headers_and_idempotency_key_are_sent(
    client: httpx.AsyncClient, base_url: str
) -> None:
    url = f"{base_url}/inspect"
    seen = (await call(client, {"url": url, "headers": {"X-Trace": "t1"}}))["body"]["headers"]
    assert seen["x-trace"] == "t1"
    assert seen["idempotency-key"] == "exec-1:fetch"
    assert seen["user-agent"] == "turnout"
    own = {"url": url, "headers": {"idempotency-key": "mine"}}
    assert (await call(client, own))["body"]["headers"]["idempotency-key"] == "mine"
    off = await call(client, {"url": url}, http_send_idempotency_key=False)
    assert "idempotency-key" not in off["body"]["headers"]


@pytest.mark.parametrize(
    ("code", "retryable"), [(400, False), (404, False), (408, True), (429, True), (500, True)]
)
async def test_non_2xx_fails_with_http_status(
    client: httpx.AsyncClient, base_url: str, code: int, retryable: bool
) -> None:
    error = await failure(client, {"url": f"{base_url}/status/{code}?secret=s3"})
    assert error.code == "http_status"
    assert str(code) in error.message and f"status {code}" in error.message
    assert "s3" not in error.message  # query strings may hold secrets
    assert error.retryable is retryable


async def test_accept_status_lets_a_404_through(client: httpx.AsyncClient, base_url: str) -> None:
    output = await call(client, {"url": f"{base_url}/status/404", "acceptStatus": [404]})
    assert (output["status"], output["body"]) == (404, "status 404")


async def test_timeout_fails_retryably(client: httpx.AsyncClient, base_url: str) -> None:
    started = time.monotonic()
    error = await failure(client, {"url": f"{base_url}/slow?s=1.5", "timeout": 200})
    assert time.monotonic() - started < 1.0
    assert (error.code, error.retryable) == ("http_timeout", True)
    assert "200 ms" in error.message


async def test_connection_refused_fails_retryably(client: httpx.AsyncClient) -> None:
    error = await failure(client, {"url": "http://127.0.0.1:9/"})
    assert (error.code, error.retryable) == ("http_network", True)


@pytest.mark.parametrize("stream", [False, True], ids=["content-length", "chunked"])
async def test_response_larger_than_the_cap_fails(
    client: httpx.AsyncClient, base_url: str, stream: bool
) -> None:
    url = f"{base_url}/big?n=5000&stream={str(stream).lower()}"
    error = await failure(client, {"url": url}, http_max_response_bytes=1000)
    assert (error.code, error.retryable) == ("http_response_too_large", False)
    assert "1000 bytes" in error.message
    small = await call(client, {"url": f"{base_url}/big?n=500"}, http_max_response_bytes=1000)
    assert small["body"] == "x" * 500


async def test_redirects_are_not_followed_by_default(
    client: httpx.AsyncClient, base_url: str
) -> None:
    url = f"{base_url}/redirect?to=/json"
    error = await failure(client, {"url": url})
    assert error.code == "http_status" and "302" in error.message
    output = await call(client, {"url": url, "acceptStatus": [302]})
    assert output["status"] == 302 and output["headers"]["location"] == "/json"


async def test_redirects_are_followed_when_asked(client: httpx.AsyncClient, base_url: str) -> None:
    output = await call(client, {"url": f"{base_url}/chain/5", "followRedirects": True})
    assert output["body"] == {"done": True}
    error = await failure(client, {"url": f"{base_url}/chain/6", "followRedirects": True})
    assert (error.code, error.retryable) == ("http_redirect", False)


@pytest.mark.parametrize(("code", "method", "body"), [(303, "GET", ""), (307, "POST", '"x"')])
async def test_redirect_method_rules(
    client: httpx.AsyncClient, base_url: str, code: int, method: str, body: str
) -> None:
    params = {
        "method": "POST",
        "url": f"{base_url}/redirect?to=/inspect&code={code}",
        "json": "x",
        "followRedirects": True,
    }
    seen = (await call(client, params))["body"]
    assert (seen["method"], seen["body"]) == (method, body)


async def test_private_server_is_refused_without_being_contacted(
    client: httpx.AsyncClient, base_url: str
) -> None:
    hits.clear()
    error = await failure(client, {"url": f"{base_url}/json"}, http_allow_private=False)
    assert (error.code, error.retryable) == ("ssrf_blocked", False)
    assert "127.0.0.1" in error.message
    assert hits == []


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.2:{port}/json"]
)
async def test_redirect_to_a_blocked_address_is_refused(
    client: httpx.AsyncClient, base_url: str, target: str
) -> None:
    # 127.0.0.1 is allowlisted, so the first hop goes through; the hop it redirects to is not.
    settings: dict[str, Any] = {"http_allow_private": False, "http_allowlist": ["127.0.0.1"]}
    assert (await call(client, {"url": f"{base_url}/json"}, **settings))["status"] == 200
    location = target.format(port=httpx.URL(base_url).port)
    url = f"{base_url}/redirect?to={location}"
    error = await failure(client, {"url": url, "followRedirects": True}, **settings)
    assert (error.code, error.retryable) == ("ssrf_blocked", False)
    assert httpx.URL(location).host in error.message


async def test_socket_to_a_blocked_peer_is_closed_before_sending(base_url: str) -> None:
    # The client's proxy makes httpx connect somewhere other than the vetted host, as DNS
    # rebinding would: 8.8.8.8 passes the pre-check, the socket lands on 127.0.0.1.
    hits.clear()
    async with httpx.AsyncClient(proxy=base_url) as proxied:
        error = await failure(proxied, {"url": "http://8.8.8.8/json"}, http_allow_private=False)
    assert error.code == "ssrf_blocked" and "127.0.0.1" in error.message
    assert hits == []


async def test_credentials_are_dropped_on_a_cross_origin_redirect(
    client: httpx.AsyncClient, base_url: str
) -> None:
    port = httpx.URL(base_url).port
    headers = {"Authorization": "Bearer s3", "X-Keep": "1"}
    for target, kept in [("/inspect", True), (f"http://localhost:{port}/inspect", False)]:
        params = {"url": f"{base_url}/redirect?to={target}", "headers": headers}
        seen = (await call(client, {**params, "followRedirects": True}))["body"]["headers"]
        assert ("authorization" in seen) is kept
        assert seen["x-keep"] == "1"
