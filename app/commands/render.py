"""Rich renderings of executions, steps, events and workflows (the `-o table` output)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from turnout import Event, Execution, Step, Workflow

STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "cancelled": "red",
    "running": "cyan",
    "pending": "yellow",
    "waiting": "magenta",
    "paused": "magenta",
    "skipped": "dim",
    "retrying": "yellow",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def when(value: datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value else ""


def ms(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"


def compact(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def steps_table(steps: Sequence[Step]) -> Table:
    table = Table(title="steps", title_justify="left", expand=False)
    for column in ("node", "status", "attempt", "duration", "detail"):
        table.add_column(column, overflow="fold")
    for step in steps:
        node = step.node_id if step.item_index is None else f"{step.node_id}[{step.item_index}]"
        detail = step.error.message if step.error else (step.skip_reason or "")
        table.add_row(
            node, status_text(step.status), str(step.attempt), ms(step.duration_ms), detail
        )
    return table


def execution_view(execution: Execution) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    workflow = execution.workflow_name or execution.workflow_id or ""
    if execution.workflow_version:
        workflow += f" (version {execution.workflow_version})"
    mode = execution.mode or ""
    if execution.requested_mode and execution.requested_mode != mode:
        mode += f" (asked {execution.requested_mode})"
    rows: list[tuple[str, str | Text]] = [
        ("execution", execution.id),
        ("workflow", workflow),
        ("status", status_text(execution.status)),
        ("mode", mode),
        ("attempt", str(execution.attempt)),
        ("priority", str(execution.priority)),
        ("tags", ", ".join(execution.tags)),
        ("created", when(execution.created_at)),
        ("duration", ms(execution.duration_ms)),
        ("progress", f"{execution.progress.done}/{execution.progress.total}"),
    ]
    if execution.queue_position is not None:
        rows.append(("queue position", str(execution.queue_position)))
    if execution.error:
        where = f" at {execution.error.node_id}" if execution.error.node_id else ""
        rows.append(("error", f"{execution.error.code}{where}: {execution.error.message}"))
    if execution.status == "completed":
        rows.append(("result", compact(execution.result)))
    for name, value in rows:
        if value != "":
            grid.add_row(name, value)
    parts: list[RenderableType] = [grid]
    if execution.steps:
        parts.append(steps_table(execution.steps))
    return Group(*parts)


def executions_table(executions: Iterable[Execution]) -> Table:
    table = Table(expand=False)
    for column in ("execution", "workflow", "status", "mode", "attempt", "created", "duration"):
        table.add_column(column, overflow="fold", no_wrap=column == "execution")
    for e in executions:
        table.add_row(
            e.id,
            e.workflow_name or e.workflow_id or "",
            status_text(e.status),
            e.mode or "",
            str(e.attempt),
            when(e.created_at),
            ms(e.duration_ms),
        )
    return table


def event_line(event: Event) -> Text:
    text = Text(f"{event.seq or '':>4}  {when(event.at)}  ")
    text.append(event.type, style=STATUS_STYLE.get(event.type.rpartition(".")[2], "bold"))
    if event.node_id:
        text.append(f"  {event.step_key or event.node_id}")
    if event.attempt and event.node_id:
        text.append(f"  attempt {event.attempt}")
    if event.progress and event.progress.total:
        text.append(f"  [{event.progress.done}/{event.progress.total}]")
    if event.queue_position is not None:
        text.append(f"queue position {event.queue_position}")
    error = event.data.get("error")
    if isinstance(error, dict) and error.get("message"):
        text.append(f"  {error['message']}", style="red")
    return text


def workflows_table(workflows: Iterable[Workflow]) -> Table:
    table = Table(expand=False)
    for column in ("name", "version", "created", "nodes"):
        table.add_column(column, overflow="fold")
    for w in workflows:
        nodes = len(w.definition.get("nodes") or ()) if w.definition else ""
        table.add_row(w.name, w.version or "", when(w.created_at), str(nodes))
    return table


def print_to(console: Console, renderable: RenderableType) -> None:
    console.print(renderable, highlight=False)
