"""The dashboard's login in a real browser (Chromium): the session authenticates EventSource,
the dashboard's own writes carry the CSRF token, and script cannot read the session."""

from __future__ import annotations

import httpx

from tests.security.conftest import bearer, make_key
from tests.support.browser import browser_page

HUMAN = {"nodes": [{"id": "ask", "type": "human.input", "params": {"prompt": "ok?"}}]}


async def test_browser_logs_in_and_streams_and_controls_with_its_session(
    client: httpx.AsyncClient, api_url: str, db_url: str
) -> None:
    key = make_key(db_url, "ops", "read,run,control")
    waiting = await client.post(
        "/workflow/run", json={"workflow": HUMAN, "mode": "immediate"}, headers=bearer(key)
    )
    execution = waiting.json()["executionId"]

    async with browser_page(api_url) as (page, console):
        await page.goto("/ui/")
        assert "/ui/login" in page.url
        await page.fill("#key", key)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{api_url}/ui/")
        assert key not in page.url

        assert "turnout_session" not in await page.evaluate("document.cookie")
        opened = await page.evaluate(
            """() => new Promise((resolve) => {
                const source = new EventSource("/executions/stream");
                source.onopen = () => { source.close(); resolve(true); };
                source.onerror = () => { source.close(); resolve(false); };
            })"""
        )
        assert opened is True
        answer = await page.evaluate(
            "(id) => Turnout.call('POST', '/execution/' + id + '/cancel')", execution
        )
        assert answer["status"] == 200 and answer["data"]["status"] == "cancelled"
        forged = await page.evaluate(
            "(id) => fetch('/execution/' + id + '/retry', {method: 'POST'}).then(r => r.status)",
            execution,
        )
        assert forged == 403  # a request without the CSRF token, as a cross-site form's
        assert not [e for e in console.errors if "403" not in e]
