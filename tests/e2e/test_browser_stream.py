"""A browser's view: a real EventSource in headless Chromium watches a run to its end."""

from __future__ import annotations

import os
import shutil
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.support.prereq import missing
from tests.support.workers import running_worker

CHROMIUM = (
    os.environ.get("TURNOUT_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
)


@pytest.fixture(autouse=True)
def _chromium() -> None:
    if not os.path.exists(CHROMIUM):
        missing(f"Chromium at {CHROMIUM}", "apt-get install chromium; scripts/test installs it")


WATCH = """
async (path) => await new Promise((resolve, reject) => {
  const seen = [];
  const source = new EventSource(path);
  const types = ["execution.created", "execution.started", "step.started", "step.completed",
                 "execution.completed", "execution.failed"];
  for (const type of types) {
    source.addEventListener(type, (e) => {
      seen.push({type, id: e.lastEventId, data: JSON.parse(e.data)});
      if (type === "execution.completed" || type === "execution.failed") {
        source.close();
        resolve(seen);
      }
    });
  }
  setTimeout(() => { source.close(); reject(new Error("timed out: " + JSON.stringify(seen))); },
             20000);
})
"""


async def test_an_eventsource_in_chromium_sees_the_run(
    api_url: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    from playwright.async_api import async_playwright

    workflow = {
        "nodes": [
            {"id": "a", "type": "delay", "params": {"ms": 100}},
            {"id": "b", "type": "transform", "params": {"v": "done"}, "dependsOn": ["a"]},
        ]
    }
    response = await client.post("/workflow/run", json={"workflow": workflow, "mode": "queued"})
    execution_id = response.json()["executionId"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            await page.goto(f"{api_url}/healthz")  # same origin as the stream
            async with running_worker(settings):
                seen: list[dict[str, Any]] = await page.evaluate(
                    WATCH, f"/execution/{execution_id}/stream"
                )
        finally:
            await browser.close()
    types = [e["type"] for e in seen]
    assert types[0] == "execution.created" and types[-1] == "execution.completed"
    assert types.count("step.completed") == 2
    assert [int(e["id"]) for e in seen] == sorted(int(e["id"]) for e in seen)
    assert all(e["data"]["executionId"] == execution_id for e in seen)
