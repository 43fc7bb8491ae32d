"""The dashboard's login over a real server: a session cookie (HttpOnly, SameSite) that the API
and streams accept, CSRF on changes, and no key in any URL."""

from __future__ import annotations

import httpx

from tests.security.conftest import make_key, turnout_db

HUMAN = {"nodes": [{"id": "ask", "type": "human.input", "params": {"prompt": "ok?"}}]}


async def test_pages_send_a_browser_without_a_session_to_the_login(
    client: httpx.AsyncClient, db_url: str
) -> None:
    make_key(db_url, "viewer", "read")
    page = await client.get("/ui/")
    assert page.status_code == 303 and page.headers["location"] == "/ui/login?next=/ui/"
    login = await client.get("/ui/login?next=/ui/")
    assert login.status_code == 200 and 'type="password"' in login.text


async def test_login_sets_a_session_the_api_and_streams_accept(
    client: httpx.AsyncClient, db_url: str
) -> None:
    key = make_key(db_url, "ops", "read,run,control")
    bad = await client.post("/ui/login", data={"key": "tno_wrong", "next": "/ui/"})
    assert bad.status_code == 401 and "not valid" in bad.text

    logged = await client.post("/ui/login", data={"key": key, "next": "//evil.example/"})
    assert logged.status_code == 303 and logged.headers["location"] == "/ui/"
    assert key not in logged.headers["location"]
    cookies = logged.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("turnout_session="))
    assert "HttpOnly" in session and "SameSite=lax" in session and key not in session
    csrf = client.cookies["turnout_csrf"]

    # The cookie is a credential for pages, the JSON API and an EventSource alike.
    assert (await client.get("/ui/")).status_code == 200
    assert (await client.get("/executions")).status_code == 200
    async with client.stream("GET", "/executions/stream") as stream:
        assert stream.status_code == 200

    # A change needs the CSRF token too (a cross-site form cannot send the header).
    submitted = await client.post(
        "/workflow/run",
        json={"workflow": HUMAN, "mode": "immediate"},
        headers={"X-CSRF-Token": csrf},
    )
    assert submitted.status_code in (200, 202), submitted.text
    execution = submitted.json()["executionId"]
    forged = await client.post(f"/execution/{execution}/cancel")
    assert (
        forged.status_code == 403 and forged.json()["error"]["details"][0]["code"] == "csrf_failed"
    )
    wrong = await client.post(f"/execution/{execution}/cancel", headers={"X-CSRF-Token": "nope"})
    assert wrong.status_code == 403
    done = await client.post(
        f"/execution/{execution}/cancel", headers={"X-CSRF-Token": csrf, "X-Actor": "dashboard"}
    )
    assert done.status_code == 200 and done.json()["status"] == "cancelled"


async def test_revoking_the_key_ends_its_sessions(client: httpx.AsyncClient, db_url: str) -> None:
    key = make_key(db_url, "ops", "read")
    await client.post("/ui/login", data={"key": key})
    assert (await client.get("/executions")).status_code == 200
    assert turnout_db(db_url, "keys", "revoke", "ops").returncode == 0
    assert (await client.get("/executions")).status_code == 401
