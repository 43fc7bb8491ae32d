"""The dashboard's Circuits page in a real browser: an open breaker shown as color and word,
axe-clean in both themes, and its Reset button closing it through the API."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Literal

import httpx
import pytest

from app.config import Settings
from tests.support.browser import CHROMIUM, browser_page, screenshot, serious_violations
from tests.support.flaky_peer import FlakyPeer, flaky_peer
from tests.support.prereq import missing


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"circuit_failures": 2, "circuit_cooldown_ms": 60_000})


@pytest.fixture
def chromium() -> None:
    if not os.path.exists(CHROMIUM):
        missing(f"Chromium at {CHROMIUM}", "Debian: apt-get install chromium")


@pytest.fixture
def peer() -> Iterator[FlakyPeer]:
    with flaky_peer() as p:
        yield p


async def test_circuits_page_shows_and_resets(
    chromium: None, api_url: str, client: httpx.AsyncClient, peer: FlakyPeer
) -> None:
    workflow = {
        "nodes": [{"id": "c", "type": "http.request", "params": {"url": f"{peer.url}/call"}}]
    }
    for _ in range(2):
        await client.post("/workflow/run", json={"workflow": workflow, "mode": "immediate"})
    host = peer.url.removeprefix("http://")
    themes: tuple[Literal["light", "dark"], ...] = ("light", "dark")
    for theme in themes:
        async with browser_page(api_url, theme=theme) as (page, console):
            await page.goto("/ui/circuits")
            row = page.locator(f"tr[data-circuit='{host}']")
            await row.wait_for()
            assert await row.get_attribute("data-state") == "open"
            assert "open" in await row.locator(".badge").inner_text()
            assert await page.get_by_role("link", name="Circuits").get_attribute("aria-current")
            assert await serious_violations(page) == []
            await screenshot(page, f"circuits-{theme}")
            if theme == "dark":
                await row.get_by_role("button", name="Reset").click()
                await page.locator("#toast", has_text=f"Reset {host}").wait_for()
                # The 3 s refresh shows it gone, as the API does.
                await page.locator(f"tr[data-circuit='{host}']").wait_for(state="detached")
                assert (await client.get("/circuits")).json()["items"] == []
            assert console.errors == []
