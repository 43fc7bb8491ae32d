"""Headless Chromium (Debian's, driven by Playwright) for the dashboard's browser tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

CHROMIUM = (
    os.environ.get("TURNOUT_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
)
AXE = Path(__file__).parent.parent / "e2e" / "vendor" / "axe-4.14.1.min.js"
SCREENSHOTS = Path(os.environ.get("TURNOUT_SCREENSHOTS", "artifacts/screenshots"))


class Console:
    """Errors a page logged (console.error, uncaught exceptions, failed loads)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)


@contextlib.asynccontextmanager
async def browser_page(
    base_url: str, *, theme: Literal["light", "dark"] = "light"
) -> AsyncIterator[tuple[Any, Console]]:
    """A fresh page (1300x900, the given color scheme) and the errors it logs."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = await browser.new_context(
                base_url=base_url, color_scheme=theme, viewport={"width": 1300, "height": 900}
            )
            page = await context.new_page()
            page.set_default_timeout(15_000)
            console = Console()
            console.watch(page)
            yield page, console
        finally:
            await browser.close()


async def serious_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    await page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = await page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"][:5]]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def screenshot(page: Any, name: str) -> Path:
    await asyncio.to_thread(SCREENSHOTS.mkdir, parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
