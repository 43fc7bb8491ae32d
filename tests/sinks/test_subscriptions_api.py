"""`/subscriptions`: what is refused (with one error shape, changing nothing), namespaces,
the SSRF guard, the audit log."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from app.store.audit import AuditFilter, AuditStore
from tests.security.conftest import bearer, make_key
from tests.servers import run_server
from tests.sinks.conftest import ALL
from tests.support.receiver import Receiver

HOOK = "http://127.0.0.1:9/hook"
HOOKED = {"sink": "webhook", "events": ["*"], "url": HOOK}


async def test_create_get_patch_delete(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    made = await client.post(
        "/subscriptions",
        json={"url": HOOK, "workflow": "pipeline", "events": ["step.failed", "execution.*"],
              "sink": "webhook", "description": "billing"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    body = made.json()
    assert made.headers["location"] == f"/subscriptions/{body['id']}"
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 30
    assert body["namespace"] == "default" and body["status"] == "active"
    got = (await client.get(f"/subscriptions/{body['id']}")).json()
    assert "secret" not in got  # shown once
    assert got["events"] == ["step.failed", "execution.*"]
    listed = (await client.get("/subscriptions")).json()["items"]
    assert [s["id"] for s in listed] == [body["id"]]

    changed = await client.patch(f"/subscriptions/{body['id']}", json={"events": ["*"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["*"] and changed.json()["workflow"] == "pipeline"

    cleared = await client.patch(f"/subscriptions/{body['id']}", json={"events": None})
    assert cleared.status_code == 422
    assert cleared.json()["error"]["details"][0]["field"] == "events"

    assert (await client.delete(f"/subscriptions/{body['id']}")).status_code == 204
    gone = await client.get(f"/subscriptions/{body['id']}")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "subscription_not_found"
    actions = [e["action"] for e in (await AuditStore(engine).list(AuditFilter(), limit=10))[0]]
    assert actions == ["subscription.delete", "subscription.patch", "subscription.post"]


async def test_a_given_secret_is_kept(client: httpx.AsyncClient) -> None:
    made = await client.post(
        "/subscriptions", json={**ALL, "url": HOOK, "secret": "my-own-secret-0123456789"}
    )
    assert made.json()["secret"] == "my-own-secret-0123456789"


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"sink": "webhook", "events": ["*"]}, "url", "missing"),
        ({"sink": "webhook", "events": ["*"], "url": "ftp://x/y"}, "url", "bad_url"),
        ({**HOOKED, "events": ["step.finished"]}, "events[0]", "unknown_event"),
        ({"sink": "webhook", "events": [], "url": HOOK}, "events", "too_short"),
        ({"sink": "kafka", "events": ["*"]}, "sink", "literal_error"),
        ({"sink": "redis-stream", "events": ["*"]}, "stream", "bad_stream"),
        ({"sink": "redis-stream", "events": ["*"], "stream": "a b"}, "stream", "bad_stream"),
        ({**HOOKED, "secret": "short"}, "secret", "string_too_short"),
        ({**HOOKED, "color": "red"}, "color", "extra_forbidden"),
    ],
)  # fmt: skip
async def test_bad_subscriptions_are_422_and_change_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], field: str, code: str
) -> None:
    answer = await client.post("/subscriptions", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert [(d["field"], d["code"]) for d in error["details"]] == [(field, code)]
    assert (await client.get("/subscriptions")).json()["items"] == []


async def test_unknown_ids_are_404(client: httpx.AsyncClient) -> None:
    missing = "00000000-0000-0000-0000-000000000001"
    for method, path in [
        ("GET", f"/subscriptions/{missing}"),
        ("PATCH", f"/subscriptions/{missing}"),
        ("DELETE", f"/subscriptions/{missing}"),
        ("GET", f"/subscriptions/{missing}/deliveries"),
        ("POST", f"/subscriptions/{missing}/deliveries/1/redeliver"),
    ]:
        answer = await client.request(method, path, json={} if method == "PATCH" else None)
        assert answer.status_code == 404, (method, path, answer.text)
    sub = (await client.post("/subscriptions", json={**ALL, "url": HOOK})).json()
    answer = await client.post(f"/subscriptions/{sub['id']}/deliveries/99/redeliver")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "delivery_not_found"


async def test_a_private_webhook_url_is_refused_unless_allowed(
    settings: Settings, engine: AsyncEngine, receiver: Receiver
) -> None:
    strict = settings.model_copy(update={"http_allow_private": False})
    with run_server(create_app(strict)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            for hook in (receiver.url, "http://10.1.2.3/x", "http://169.254.169.254/latest"):
                answer = await http.post("/subscriptions", json={**ALL, "url": hook})
                assert answer.status_code == 422, answer.text
                [problem] = answer.json()["error"]["details"]
                assert (problem["field"], problem["code"]) == ("url", "ssrf_blocked")
            assert (await http.get("/subscriptions")).json()["items"] == []
    allowed = settings.model_copy(
        update={"http_allow_private": False, "http_allowlist": ["127.0.0.1"]}
    )
    with run_server(create_app(allowed)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            answer = await http.post("/subscriptions", json={**ALL, "url": receiver.url})
            assert answer.status_code == 201, answer.text


async def test_another_namespace_subscription_is_404(api_settings_url: str, db_url: str) -> None:
    admin_a = make_key(db_url, "admin-a", "admin", "team-a")
    reader_b = make_key(db_url, "reader-b", "read", "team-b")
    async with httpx.AsyncClient(base_url=api_settings_url) as http:
        made = await http.post("/subscriptions", json={**ALL, "url": HOOK}, headers=bearer(admin_a))
        assert made.status_code == 201, made.text
        assert made.json()["namespace"] == "team-a"
        sub_id = made.json()["id"]
        seen = await http.get(f"/subscriptions/{sub_id}", headers=bearer(reader_b))
        assert seen.status_code == 404
        listed = await http.get("/subscriptions", headers=bearer(reader_b))
        assert listed.json()["items"] == []
        refused = await http.post(
            "/subscriptions", json={**ALL, "url": HOOK}, headers=bearer(reader_b)
        )
        assert refused.status_code == 403
