"""What the pages show, shaped from the API's own resources (no extra data source)."""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import JsonLexer
from sqlalchemy.ext.asyncio import AsyncEngine

from app.engine.status import TERMINAL, Status
from app.errors import TurnoutError
from app.nodes.registry import NodeRegistry
from app.store.analytics import AnalyticsStore, Window
from app.store.records import ExecutionFilter
from app.workflows.graph import compile_workflow

OUTLINE_ABOVE = 300  # nodes; above this the page lists nodes instead of drawing the graph
STATUSES = tuple(str(s) for s in Status)
CONTROLS = {
    # button name: (API verb, JSON body, statuses in which it is enabled)
    "Pause": ("pause", None, ("pending", "running", "waiting")),
    "Resume": ("resume", None, ("paused",)),
    "Cancel": ("cancel", None, ("pending", "running", "paused", "waiting")),
    "Retry from failed": ("retry", {"from": "failed"}, ("failed", "cancelled")),
    "Retry from start": ("retry", {"from": "start"}, ("failed", "cancelled")),
}


@dataclass(slots=True)
class ListQuery:
    """The list page's filters, as given in the URL."""

    status: list[str]
    workflow: str = ""
    tag: str = ""
    mode: str = ""
    after: str = ""
    before: str = ""
    q: str = ""

    def to_filter(self) -> ExecutionFilter:
        return ExecutionFilter(
            status=[s for s in self.status if s in STATUSES] or None,
            workflow=self.workflow or None,
            mode=self.mode if self.mode in ("immediate", "queued") else None,
            tag=self.tag or None,
            created_after=_when(self.after, "From"),
            created_before=_when(self.before, "To"),
            text=self.q.strip() or None,
        )

    def params(self) -> list[tuple[str, str]]:
        pairs = [("status", s) for s in self.status]
        for name in ("workflow", "tag", "mode", "after", "before", "q"):
            if getattr(self, name):
                pairs.append((name, getattr(self, name)))
        return pairs


class FilterInvalid(ValueError):
    pass


def _when(text: str, label: str) -> datetime | None:
    """A `datetime-local` value (the browser's, taken as UTC) or an ISO 8601 time."""
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FilterInvalid(f"{label}: '{text}' is not a date and time") from exc
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def short_time(iso: str | None) -> str:
    return iso.replace("T", " ")[:19] if iso else ""


def duration_text(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 120_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} min"


def key_inputs(value: Any, limit: int = 3) -> str:
    """A few scalar input fields, inline (`orderId=42 · user=ann`)."""
    if not isinstance(value, dict):
        return "" if value in (None, {}) else json.dumps(value)[:60]
    parts: list[str] = []
    for name, item in value.items():
        if isinstance(item, str | int | float | bool) and len(parts) < limit:
            parts.append(f"{name}={str(item)[:30]}")
    return " · ".join(parts)


def row(resource: dict[str, Any]) -> dict[str, Any]:
    version = resource.get("workflowVersion")
    name = resource.get("workflowName") or resource.get("workflowId") or "inline"
    progress = resource.get("progress") or {}
    return {
        "id": resource["executionId"],
        "status": resource["status"],
        "workflow": f"{name}@{version}" if version else name,
        "mode": resource["mode"],
        "created": short_time(resource.get("createdAt")),
        "duration": duration_text(resource.get("durationMs")),
        "progress": f"{progress.get('done', 0)}/{progress.get('total', 0)}",
        "inputs": key_inputs(resource.get("input")),
        "terminal": resource["status"] in TERMINAL,
        "schedule": resource.get("schedule"),
    }


def node_status(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each node's own step (foreach items are folded into their node)."""
    return {s["nodeId"]: s for s in resource.get("steps", []) if "itemIndex" not in s}


def graph(
    definition: dict[str, Any], registry: NodeRegistry, max_nodes: int
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Nodes (id, type) and edges (dependency, dependent) of a stored definition."""
    nodes = [n for n in definition.get("nodes", []) if isinstance(n, dict)]
    try:
        compiled = compile_workflow(definition, registry, max_nodes=max(max_nodes, len(nodes)))
        deps = {node_id: sorted(node.deps) for node_id, node in compiled.nodes.items()}
    except TurnoutError:  # a definition stored before a rule changed: draw what it says
        deps = {str(n.get("id")): list(n.get("dependsOn") or []) for n in nodes}
    listed = [{"id": str(n.get("id")), "type": str(n.get("type"))} for n in nodes]
    edges = [(dep, node_id) for node_id, before in deps.items() for dep in before]
    return listed, edges


def _parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest rank: p50 of 10 values is the 5th smallest, p95 the 10th."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def outcome_stats(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """Success rate of the finished runs, and p50/p95 duration of the completed ones."""
    finished = [r for r in resources if r["status"] in TERMINAL]
    completed = [r for r in finished if r["status"] == "completed"]
    durations = [r["durationMs"] for r in completed if r.get("durationMs") is not None]
    rate = f"{len(completed) / len(finished) * 100:.0f}%" if finished else "n/a"
    return {
        "finished": len(finished),
        "successRate": rate,
        "p50": duration_text(percentile(durations, 0.5)) or "n/a",
        "p95": duration_text(percentile(durations, 0.95)) or "n/a",
    }


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=str)


def highlighted(value: Any) -> Markup:
    html = highlight(pretty(value), JsonLexer(), HtmlFormatter(nowrap=True))
    return Markup(html)  # Pygments escapes the source


def diff_lines(old: Any, new: Any) -> list[tuple[str, str]]:
    """A unified diff of two definitions: (kind, line) with kind add, del, hunk or same."""
    lines = difflib.unified_diff(
        pretty(old).splitlines(), pretty(new).splitlines(), lineterm="", n=3
    )
    out = []
    for line in list(lines)[2:]:
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        out.append((kind, line))
    return out


async def workflow_analytics(engine: AsyncEngine, name: str) -> dict[str, Any]:
    """The workflow page's analytics: per version over 7 days, per hour over 24 hours."""
    store = AnalyticsStore(engine)
    now = datetime.now(UTC)
    items = await store.workflow_stats(Window(now - timedelta(days=7), now, name))
    series = await store.workflow_timeseries(Window(now - timedelta(days=1), now, name), 3600)
    for point in series:
        point["start"] = point["start"].isoformat().replace("+00:00", "Z")
    return {"analytics": items, "series": series}
