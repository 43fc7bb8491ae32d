"""The API's contract: one error shape, clear answers to malformed bodies, a truthful OpenAPI
document and documentation pages that need no network."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

DETAIL_KEYS = {"loc", "field", "code", "message"}
ONE_STEP = {"name": "one", "nodes": [{"id": "a", "type": "noop", "params": {"value": 1}}]}


def assert_error_shape(response: httpx.Response, status: int, code: str) -> list[dict[str, Any]]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["details"], list)
    for item in error["details"]:
        assert set(item) >= DETAIL_KEYS, item
        assert isinstance(item["loc"], list)
        assert isinstance(item["field"], str)
        assert "nodeId" not in item or isinstance(item["nodeId"], str)
    details: list[dict[str, Any]] = error["details"]
    return details


async def test_request_validation_details_are_a_list_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/workflow/run", json={"workflow": ONE_STEP, "options": {"priority": 1000}}
    )
    (item,) = assert_error_shape(response, 422, "request_invalid")
    assert item["loc"] == ["body", "options", "priority"]
    assert item["field"] == "options.priority"


async def test_workflow_problems_carry_the_node_id(client: httpx.AsyncClient) -> None:
    workflow = {"nodes": [{"id": "a", "type": "no-such-type"}]}
    response = await client.post("/workflow/run", json={"workflow": workflow})
    details = assert_error_shape(response, 422, "workflow_invalid")
    assert details[0]["nodeId"] == "a"


async def test_not_found_details_are_an_empty_list(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/execution/{uuid.uuid4()}")
    assert assert_error_shape(response, 404, "execution_not_found") == []


async def test_unknown_route_is_a_json_error_with_empty_details(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/no/such/route")
    assert assert_error_shape(response, 404, "not_found") == []
    assert "/no/such/route" in response.json()["error"]["message"]


async def test_invalid_transition_details_name_the_current_status(
    client: httpx.AsyncClient,
) -> None:
    done = await client.post("/workflow/run", json={"workflow": ONE_STEP, "mode": "immediate"})
    assert done.json()["status"] == "completed"
    response = await client.post(f"/execution/{done.json()['executionId']}/pause")
    (item,) = assert_error_shape(response, 409, "invalid_transition")
    assert item["loc"] == ["status"]
    assert item["currentStatus"] == "completed"


async def test_bad_json_answers_with_the_parsers_position(client: httpx.AsyncClient) -> None:
    body = '{"workflow": {"name": "x" "nodes": []}}'
    response = await client.post(
        "/workflow/run", content=body, headers={"content-type": "application/json"}
    )
    (item,) = assert_error_shape(response, 422, "request_invalid")
    message = "request body is not valid JSON: Expecting ',' delimiter: line 1 column 27"
    assert response.json()["error"]["message"] == message
    assert item["code"] == "json_invalid"
    assert item["field"] == ""


async def test_bad_json_on_a_later_line_names_that_line(client: httpx.AsyncClient) -> None:
    body = '{\n  "workflow": {\n    "nodes": [,]\n  }\n}'
    response = await client.post(
        "/workflows", content=body, headers={"content-type": "application/json"}
    )
    assert_error_shape(response, 422, "request_invalid")
    assert response.json()["error"]["message"].endswith("line 3 column 15")


async def test_body_that_is_not_utf8_is_a_422_not_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/workflow/run", content=b'{"a": "\xff"}', headers={"content-type": "application/json"}
    )
    assert_error_shape(response, 422, "request_invalid")
    assert response.json()["error"]["message"].startswith("request body is not valid JSON")


async def test_json_body_without_content_type_is_accepted(client: httpx.AsyncClient) -> None:
    request = client.build_request(
        "POST", "/workflow/run", content=b'{"workflow": {"nodes": [{"id": "a", "type": "noop"}]}}'
    )
    assert "content-type" not in request.headers
    response = await client.send(request)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"


async def test_body_sent_as_form_data_is_415_saying_to_send_json(
    client: httpx.AsyncClient,
) -> None:
    # What `curl -d '{...}'` sends without -H 'content-type: application/json'.
    response = await client.post(
        "/workflow/run",
        content=b'{"workflow": {"nodes": [{"id": "a", "type": "noop"}]}}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_error_shape(response, 415, "unsupported_media_type")
    assert "Content-Type: application/json" in response.json()["error"]["message"]


async def test_method_not_allowed_lists_every_method_of_the_path(
    client: httpx.AsyncClient,
) -> None:
    response = await client.request("PATCH", f"/execution/{uuid.uuid4()}")
    assert_error_shape(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) == {"GET", "DELETE"}


async def test_openapi_declares_error_answers_of_control_routes(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    pause = spec["paths"]["/execution/{execution_id}/pause"]["post"]["responses"]
    assert {"200", "404", "409", "422", "503"} <= set(pause)
    error_ref = pause["409"]["content"]["application/json"]["schema"]["$ref"]
    error_schema = spec["components"]["schemas"][error_ref.rsplit("/", 1)[-1]]
    assert error_schema["required"] == ["error"]
    assert pause["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ControlAnswer")
    detail = spec["components"]["schemas"]["ErrorDetail"]
    assert {"loc", "field", "code", "message", "nodeId"} <= set(detail["properties"])


async def test_openapi_declares_each_operations_answers(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    run = spec["paths"]["/workflow/run"]["post"]["responses"]
    assert {"200", "202", "404", "409", "413", "415", "422"} <= set(run)
    get = spec["paths"]["/execution/{execution_id}"]["get"]["responses"]
    assert "404" in get
    assert get["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Execution")


@pytest.mark.parametrize("path", ["/execution/{execution_id}/stream", "/executions/stream"])
async def test_openapi_documents_streams_as_event_streams(
    client: httpx.AsyncClient, path: str
) -> None:
    spec = (await client.get("/openapi.json")).json()
    ok = spec["paths"][path]["get"]["responses"]["200"]
    assert list(ok["content"]) == ["text/event-stream"]


async def test_metrics_are_documented_as_text(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    ok = spec["paths"]["/metrics"]["get"]["responses"]["200"]
    assert "text/plain" in ok["content"]


def asset_urls(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(
        r"url: ['\"]([^'\"]+)['\"]", page
    )


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_use_only_local_assets_that_answer(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    urls = asset_urls(response.text)
    assert urls, response.text
    for url in urls:
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url
    assert "cdn" not in response.text.lower()
    assert "fonts.googleapis" not in response.text
