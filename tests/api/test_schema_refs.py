"""JSON Schema `$ref`s over HTTP: nothing is fetched, every bad schema is a 422 naming why."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.jsonschemas import SchemaUnusable, validate


class _Counting(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        body = json.dumps({"type": "string"}).encode()  # rules an attacker would slip in
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def counting_url() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that counts the requests it sees."""
    _Counting.hits = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _workflow(schema: dict[str, Any]) -> dict[str, Any]:
    return {"inputSchema": schema, "nodes": [{"id": "t", "type": "transform", "params": {}}]}


async def _run(client: httpx.AsyncClient, schema: dict[str, Any], data: Any = 1) -> httpx.Response:
    body = {"workflow": _workflow(schema), "input": data, "mode": "immediate"}
    return await client.post("/workflow/run", json=body)


async def test_remote_ref_in_input_schema_is_refused_and_never_fetched(
    client: httpx.AsyncClient, counting_url: str
) -> None:
    ref = f"{counting_url}/json"
    async with httpx.AsyncClient() as direct:  # the server works: a fetch would be counted
        assert (await direct.get(ref)).status_code == 200
    _Counting.hits = 0

    run = await _run(client, {"$ref": ref}, data={"any": "thing"})
    registered = await client.post(
        "/workflows",
        json={"name": "r", "version": "1", **_workflow({"properties": {"a": {"$ref": ref}}})},
    )

    assert run.status_code == 422, run.text
    error = run.json()["error"]
    assert error["code"] == "workflow_invalid"
    assert ref in error["details"][0]["message"]
    assert error["details"][0]["loc"] == ["inputSchema", "$ref"]
    assert registered.status_code == 422, registered.text
    assert ref in registered.json()["error"]["details"][0]["message"]
    assert _Counting.hits == 0


async def test_file_ref_gives_the_same_answer_whether_or_not_the_file_exists(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"type": "string"}')
    missing = tmp_path / "missing.json"

    present = await _run(client, {"$ref": secret.as_uri()})
    absent = await _run(client, {"$ref": missing.as_uri()})

    assert present.status_code == absent.status_code == 422
    said = [r.json()["error"]["details"][0]["message"] for r in (present, absent)]
    assert said[0].replace(secret.name, "X") == said[1].replace(missing.name, "X")
    assert "Unresolvable" not in said[0]


async def test_self_reference_is_a_422_not_a_500(client: httpx.AsyncClient) -> None:
    response = await _run(client, {"$ref": "#"})

    assert response.status_code == 422, response.text
    assert "refers to itself" in response.json()["error"]["details"][0]["message"]


async def test_local_refs_still_validate_input(client: httpx.AsyncClient) -> None:
    schema = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}},
            }
        },
        "$ref": "#/$defs/node",
        "required": ["kids"],
    }
    ok = await _run(client, schema, data={"kids": [{"kids": []}]})
    bad = await _run(client, schema, data={"kids": [{"kids": 5}]})

    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "completed"
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"]["code"] == "input_invalid"


async def test_remote_ref_in_human_input_schema_is_refused_and_never_fetched(
    client: httpx.AsyncClient, counting_url: str
) -> None:
    ref = f"{counting_url}/json"
    node = {
        "id": "ask",
        "type": "human.input",
        "params": {"prompt": "ok?", "schema": {"properties": {"a": {"$ref": ref}}}},
    }
    response = await client.post(
        "/workflow/run", json={"workflow": {"nodes": [node]}, "mode": "immediate"}
    )

    assert response.status_code == 422, response.text
    assert ref in json.dumps(response.json()["error"]["details"])
    assert _Counting.hits == 0


def test_a_stored_schema_with_a_remote_ref_is_refused_at_validation_without_a_fetch(
    counting_url: str,
) -> None:
    # A definition registered before refs were checked reaches validation with its ref.
    with pytest.raises(SchemaUnusable, match="unresolvable reference"):
        validate({"properties": {"a": {"$ref": f"{counting_url}/json"}}}, {"a": 1})

    assert _Counting.hits == 0
