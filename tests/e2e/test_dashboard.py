"""The dashboard in a real browser: headless Chromium over a real uvicorn API and worker."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any, Literal

import httpx
import pytest

from app.config import Settings
from tests.support.browser import CHROMIUM, browser_page, screenshot, serious_violations
from tests.support.workers import worker_process

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)",
)

APPROVAL = {
    "type": "object",
    "required": ["note", "amount"],
    "properties": {
        "note": {"type": "string", "title": "Note"},
        # exclusiveMinimum has no HTML attribute: only the server's 422 catches 0.
        "amount": {"type": "number", "title": "Amount", "exclusiveMinimum": 0},
    },
}


def chain(*nodes: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    """A workflow whose nodes run one after the other."""
    listed = []
    for i, (node_id, node_type, params) in enumerate(nodes):
        node: dict[str, Any] = {"id": node_id, "type": node_type, "params": params}
        if i:
            node["dependsOn"] = [nodes[i - 1][0]]
        listed.append(node)
    return {"nodes": listed}


async def queued(client: httpx.AsyncClient, workflow: dict[str, Any], **body: Any) -> str:
    response = await client.post(
        "/workflow/run", json={"workflow": workflow, "mode": "queued", **body}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["executionId"])


async def status_of(client: httpx.AsyncClient, execution_id: str) -> str:
    return str((await client.get(f"/execution/{execution_id}")).json()["status"])


async def test_dag_nodes_go_from_pending_to_completed_without_a_reload(
    api_url: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    workflow = chain(
        ("fetch", "delay", {"ms": 200}),
        ("shape", "transform", {"v": 1}),
        ("store", "noop", {}),
    )
    execution_id = await queued(client, workflow)
    async with browser_page(api_url) as (page, console):
        await page.goto(f"/ui/executions/{execution_id}")
        await page.wait_for_selector("#dag[data-drawn='true']")  # laid out off the main thread
        nodes = page.locator("#dag [data-node-id]")
        assert await nodes.count() == 3
        assert {await n.get_attribute("data-status") for n in await nodes.all()} == {"pending"}
        await page.wait_for_selector("#execution[data-stream='open']")
        await page.evaluate("window.notReloaded = true")
        with worker_process(settings):
            for node_id in ("fetch", "shape", "store"):
                await page.wait_for_selector(
                    f"#dag [data-node-id='{node_id}'][data-status='completed']"
                )
            await page.wait_for_selector("#exec-status[data-status='completed']")
        assert await page.evaluate("window.notReloaded") is True
        assert console.errors == []


async def test_cancel_stops_a_running_execution_and_retry_runs_it_again(
    api_url: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    # 4 s stays in the worker (under the durable-delay threshold): the run is `running`.
    execution_id = await queued(client, chain(("slow", "delay", {"ms": 4000})))
    async with browser_page(api_url) as (page, console):
        await page.goto(f"/ui/executions/{execution_id}")
        with worker_process(settings):
            await page.wait_for_selector("#exec-status[data-status='running']")
            await page.get_by_role("button", name="Cancel", exact=True).click()
            await page.wait_for_selector("#exec-status[data-status='cancelled']")
            assert await status_of(client, execution_id) == "cancelled"
            # Enabled by status: a cancelled run can be retried, not cancelled again.
            cancel = page.get_by_role("button", name="Cancel", exact=True)
            assert await cancel.is_disabled()
            assert await page.get_by_role("button", name="Retry from failed").is_enabled()
            # Retry starts a new attempt on the same stream; the page follows it to the end.
            await page.get_by_role("button", name="Retry from start").click()
            await page.wait_for_selector("#exec-status[data-status='completed']", timeout=20_000)
            await page.wait_for_selector("#dag [data-node-id='slow'][data-status='completed']")
        assert (await client.get(f"/execution/{execution_id}")).json()["attempt"] == 2
        assert console.errors == []


async def test_human_input_form_shows_errors_then_resumes_the_run(
    api_url: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    workflow = chain(
        ("ask", "human.input", {"prompt": "Approve order 42?", "schema": APPROVAL}),
        ("after", "transform", {"ok": True}),
    )
    execution_id = await queued(client, workflow)
    async with browser_page(api_url) as (page, console):
        await page.goto(f"/ui/executions/{execution_id}")
        with worker_process(settings):
            form = page.locator("#input-form")
            await form.wait_for()
            assert "Approve order 42?" in await form.inner_text()
            submit = page.get_by_role("button", name="Submit", exact=True)
            # The browser's own check: a required field left empty.
            await submit.click()
            await form.locator(".field-error[data-for='note']:not(:empty)").wait_for()
            assert await status_of(client, execution_id) == "waiting"
            # The server's check (422): 0 is not above the exclusive minimum.
            await page.get_by_label("Note").fill("looks fine")
            await page.get_by_label("Amount").fill("0")
            await submit.click()
            await form.locator(".form-errors", has_text="minimum").wait_for()
            await form.locator(".field-error[data-for='amount']", has_text="minimum").wait_for()
            assert await status_of(client, execution_id) == "waiting"
            await page.get_by_label("Amount").fill("12.5")
            await submit.click()
            await page.wait_for_selector("#exec-status[data-status='completed']")
            await page.wait_for_selector("#dag [data-node-id='after'][data-status='completed']")
        assert await status_of(client, execution_id) == "completed"
        # Chromium logs the rejected submission's 422 itself; nothing else went wrong.
        assert [e for e in console.errors if "status of 422" not in e] == []


async def test_bulk_cancel_of_three_selected_executions(
    api_url: str, client: httpx.AsyncClient
) -> None:
    # No worker: they stay pending, so Cancel is immediate.
    chosen = [await queued(client, chain(("a", "noop", {}))) for _ in range(3)]
    spared = await queued(client, chain(("a", "noop", {})))
    async with browser_page(api_url) as (page, console):
        await page.goto("/ui/")
        for execution_id in chosen:
            await page.get_by_label(f"Select {execution_id}").check()
        assert await page.locator("#selected-count").inner_text() == "3 selected"
        await page.locator("#bulk").get_by_role("button", name="Cancel").click()
        dialog = page.locator("#confirm")
        assert "3 execution(s)" in await dialog.inner_text()
        await dialog.get_by_role("button", name="Confirm").click()
        for execution_id in chosen:
            row = page.locator(f"tr[data-execution-id='{execution_id}']")
            await row.locator(".result", has_text="cancelled").wait_for()
            # The feed refreshes the rows; the selection survives it.
            await page.wait_for_selector(
                f"tr[data-execution-id='{execution_id}'][data-status='cancelled']"
            )
            assert await row.locator("input.pick").is_checked()
        assert console.errors == []
    assert [await status_of(client, i) for i in chosen] == ["cancelled"] * 3
    assert await status_of(client, spared) == "pending"
    # Who did what: the execution page names the dashboard (its X-Actor) as the canceller.
    page_html = (await client.get(f"/ui/executions/{chosen[0]}")).text
    assert "execution.cancelled by <strong>dashboard</strong>" in page_html


async def test_a_new_execution_appears_in_the_open_list_within_a_second(
    api_url: str, client: httpx.AsyncClient
) -> None:
    async with browser_page(api_url) as (page, console):
        await page.goto("/ui/")
        await page.wait_for_selector("body[data-feed='open']")
        started = time.monotonic()
        execution_id = await queued(client, chain(("a", "noop", {})), input={"orderId": "A-7"})
        row = page.locator(f"tr[data-execution-id='{execution_id}'][data-status='pending']")
        await row.wait_for(timeout=1000)
        assert time.monotonic() - started <= 1.0
        assert "orderId=A-7" in await row.inner_text()  # key inputs inline
        assert console.errors == []


async def test_a_thousand_node_execution_shows_the_outline(
    api_url: str, client: httpx.AsyncClient
) -> None:
    workflow = {"nodes": [{"id": f"n{i}", "type": "noop", "params": {}} for i in range(1000)]}
    execution_id = await queued(client, workflow)
    async with browser_page(api_url) as (page, console):
        await page.goto(f"/ui/executions/{execution_id}")
        assert await page.locator("#outline tr[data-node-id][data-status='pending']").count() == (
            1000
        )
        assert await page.locator("#dag").count() == 0
        await screenshot(page, "execution-outline-light")
        await page.locator("#outline").get_by_role("button", name="n999", exact=True).click()
        await page.locator("#step-panel", has_text=f"{execution_id}:n999").wait_for()
        assert console.errors == []


async def _register(client: httpx.AsyncClient) -> str:
    base = {
        "name": "order-review",
        "inputSchema": {
            "type": "object",
            "required": ["orderId"],
            "properties": {"orderId": {"type": "string", "title": "Order id"}},
        },
        "nodes": [{"id": "check", "type": "transform", "params": {"id": "{{ input.orderId }}"}}],
    }
    for version, extra in (("1", {}), ("2", {"dependsOn": ["check"]})):
        nodes = [*base["nodes"], {"id": "ship", "type": "noop", "params": {}, **extra}]
        definition = {**base, "version": version, "nodes": nodes}
        response = await client.post("/workflows", json=definition)
        assert response.status_code == 201, response.text
    return "order-review"


async def test_every_page_passes_axe_in_both_themes_and_is_screenshotted(
    api_url: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    name = await _register(client)
    run = await client.post(f"/workflows/{name}/run", json={"input": {"orderId": "42"}})
    finished = run.json()["executionId"]
    waiting = await queued(
        client, chain(("ask", "human.input", {"prompt": "Approve?", "schema": APPROVAL}))
    )
    pages = {
        "executions": "/ui/",
        "execution": f"/ui/executions/{finished}",
        "execution-input": f"/ui/executions/{waiting}",
        "workflows": "/ui/workflows",
        "workflow-diff": f"/ui/workflows/{name}?version=2&compare=1",
        "workflow": f"/ui/workflows/{name}",
        "queue": "/ui/queue",
    }
    with worker_process(settings):
        while await status_of(client, waiting) != "waiting":
            await asyncio.sleep(0.05)
        found: dict[str, list[dict[str, Any]]] = {}
        themes: tuple[Literal["light", "dark"], ...] = ("light", "dark")
        for theme in themes:
            async with browser_page(api_url, theme=theme) as (page, console):
                for label, path in pages.items():
                    await page.goto(path)
                    # Not "networkidle": the pages hold their streams open.
                    if label in ("execution", "execution-input"):
                        await page.wait_for_selector("#execution[data-stream]")
                    if label == "executions":
                        await page.wait_for_selector("body[data-feed='open']")
                    if label == "execution":
                        await page.locator("#dag [data-node-id='check']").click()
                        await page.locator("#step-panel", has_text="Idempotency key").wait_for()
                    if label == "queue":
                        await page.locator("[data-worker]").first.wait_for()
                    if violations := await serious_violations(page):
                        found[f"{label} ({theme})"] = violations
                    shot = await screenshot(page, f"{label}-{theme}")
                    assert shot.stat().st_size > 0
                assert console.errors == []
    assert found == {}, json.dumps(found, indent=1)


async def test_run_form_from_input_schema_and_the_graph_by_keyboard(
    api_url: str, client: httpx.AsyncClient
) -> None:
    name = await _register(client)
    async with browser_page(api_url) as (page, console):
        await page.goto(f"/ui/workflows/{name}")
        run = page.get_by_role("button", name="Run", exact=True)
        await run.click()  # "Order id" is required: the browser says so, nothing is sent
        await page.locator(".field-error[data-for='orderId']:not(:empty)").wait_for()
        assert (await client.get("/executions", params={"workflow": name})).json()["items"] == []
        await page.get_by_label("Order id").fill("A-1")
        await run.click()
        await page.wait_for_url("**/ui/executions/*")
        await page.wait_for_selector("#exec-status[data-status='completed']")
        execution_id = page.url.rsplit("/", 1)[1]
        assert (await client.get(f"/execution/{execution_id}")).json()["input"] == {
            "orderId": "A-1"
        }
        # Keyboard: a node takes the focus with Tab, and Enter opens its step.
        await page.locator("#dag [data-node-id='ship']").focus()
        await page.keyboard.press("Shift+Tab")
        focused = await page.evaluate("document.activeElement.dataset.nodeId")
        assert focused == "check"
        await page.keyboard.press("Enter")
        await page.locator("#step-panel", has_text=f"{execution_id}:check").wait_for()
        # The theme toggle is remembered across pages.
        assert await page.evaluate("document.documentElement.dataset.theme") == "light"
        await page.get_by_role("button", name="Dark theme").click()
        await page.goto("/ui/queue")
        assert await page.evaluate("document.documentElement.dataset.theme") == "dark"
        toggle = page.get_by_role("button", name="Dark theme")
        assert await toggle.get_attribute("aria-pressed") == "true"
        assert console.errors == []


async def test_a_dropped_stream_resumes_after_the_last_event_seen(
    api_url: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    execution_id = await queued(client, chain(("a", "delay", {"ms": 300}), ("b", "noop", {})))
    created = (await client.get(f"/execution/{execution_id}")).json()
    requests: list[str] = []

    async def flaky(route: Any) -> None:
        """1st: event 3, then the connection ends; 2nd: a 503; then the real stream."""
        requests.append(route.request.url)
        if len(requests) == 1:
            frame = json.dumps({"executionId": execution_id, "seq": 3, "type": "x"})
            body = f"retry: 50\nid: 3\nevent: execution.created\ndata: {frame}\n\n"
            await route.fulfill(status=200, body=body, content_type="text/event-stream")
        elif len(requests) == 2:
            await route.fulfill(status=503, body="{}", content_type="application/json")
        else:
            await route.continue_()

    async with browser_page(api_url) as (page, console):
        await page.route("**/execution/*/stream*", flaky)
        await page.goto(f"/ui/executions/{execution_id}")
        with worker_process(settings):
            await page.wait_for_selector("#exec-status[data-status='completed']")
        for node_id in ("a", "b"):
            await page.wait_for_selector(f"[data-node-id='{node_id}'][data-status='completed']")
        assert [e for e in console.errors if "503" not in e] == []
    assert created["status"] == "pending"
    # The page was rendered at seq 1. The browser reconnected by itself when the first
    # stream ended (sending Last-Event-ID: 3, which Playwright's interception does not
    # show); after the 503 the page opened a new stream after the last seq it had seen.
    assert requests[0].endswith("?after=1") and len(requests) >= 3
    assert requests[2].endswith(f"/execution/{execution_id}/stream?after=3")
