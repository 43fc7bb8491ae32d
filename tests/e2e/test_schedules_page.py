"""The schedules page in a real browser: pause and resume with its button."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.support.browser import CHROMIUM, browser_page, serious_violations

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)",
)

WORKFLOW = {
    "name": "hourly",
    "version": "1",
    "nodes": [{"id": "a", "type": "transform", "params": {"n": 1}}],
}


async def test_the_pause_button_pauses_and_resume_resumes(
    api_url: str, client: httpx.AsyncClient
) -> None:
    assert (await client.post("/workflows", json=WORKFLOW)).status_code == 201
    made = (
        await client.post("/schedules", json={"workflow": "hourly", "cron": "0 * * * *"})
    ).json()
    async with browser_page(api_url) as (page, console):
        await page.goto("/ui/schedules")
        button = page.locator(f'tr[data-schedule-id="{made["id"]}"] button.schedule-toggle')
        assert await button.inner_text() == "Pause"
        assert await serious_violations(page) == []
        await button.click()
        await page.wait_for_selector("button.schedule-toggle:text('Resume')")
        assert (await client.get(f"/schedules/{made['id']}")).json()["paused"] is True
        await page.locator("button.schedule-toggle").click()
        await page.wait_for_selector("button.schedule-toggle:text('Pause')")
        assert (await client.get(f"/schedules/{made['id']}")).json()["paused"] is False
        assert console.errors == []
