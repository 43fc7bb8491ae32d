"""Following a run: a live table of steps on a terminal, plain lines when piped."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from app.commands.options import Format
from app.commands.output import emit_line, stderr
from app.commands.render import event_line, ms, status_text
from turnout import Client, Event, Execution, WaitTimeout

STEP_STATUS = {
    "step.started": "running",
    "step.completed": "completed",
    "step.failed": "failed",
    "step.retrying": "retrying",
    "step.skipped": "skipped",
}


@dataclass
class StepRow:
    status: str
    attempt: int
    duration_ms: float | None = None


@dataclass
class RunView:
    """What the live display shows, updated event by event."""

    execution: Execution
    status: str = ""
    done: int = 0
    total: int = 0
    queue_position: int | None = None
    steps: dict[str, StepRow] = field(default_factory=dict)

    def __post_init__(self) -> None:
        e = self.execution
        self.status, self.queue_position = e.status, e.queue_position
        self.done, self.total = e.progress.done, e.progress.total
        for step in e.steps:
            key = step.step_key or step.node_id
            self.steps[key] = StepRow(step.status, step.attempt, step.duration_ms)

    def apply(self, event: Event) -> None:
        if event.type == "queue":
            self.queue_position = event.queue_position
            return
        if event.progress is not None:
            self.done, self.total = event.progress.done, event.progress.total
        if event.type.startswith("execution."):
            self.status = _EXECUTION_STATUS.get(event.type, self.status)
            if self.status != "pending":
                self.queue_position = None
            return
        key = event.step_key or event.node_id
        status = STEP_STATUS.get(event.type)
        if key is None or status is None:
            return
        row = self.steps.setdefault(key, StepRow(status, event.attempt or 1))
        row.status = status
        row.attempt = event.attempt or row.attempt
        duration = event.data.get("durationMs")
        row.duration_ms = float(duration) if isinstance(duration, int | float) else None

    def render(self) -> RenderableType:
        header = Text(f"{self.execution.id}  ")
        header.append_text(status_text(self.status))
        if self.execution.mode:
            header.append(f"  {self.execution.mode}")
        if self.queue_position is not None:
            header.append(f"  queue position {self.queue_position}", style="yellow")
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=max(self.total, 1), completed=self.done, width=40),
            f"{self.done}/{self.total} steps",
        )
        table = Table(expand=False)
        for column in ("step", "status", "attempt", "duration"):
            table.add_column(column)
        for key, row in self.steps.items():
            table.add_row(key, status_text(row.status), str(row.attempt), ms(row.duration_ms))
        return Group(header, bar, table)


_EXECUTION_STATUS = {
    "execution.created": "pending",
    "execution.started": "running",
    "execution.paused": "paused",
    "execution.resumed": "pending",
    "execution.waiting": "waiting",
    "execution.promoted": "pending",
    "execution.completed": "completed",
    "execution.failed": "failed",
    "execution.cancelled": "cancelled",
}


def follow(
    client: Client, execution: Execution, fmt: Format, timeout: float | None, after: int = 0
) -> Execution:
    """Follow the execution's stream to its end: events as jsonl on stdout with `-o jsonl`;
    a live view on stderr when it is a terminal, plain lines otherwise. Returns it, final."""
    try:
        return _follow(client, execution, fmt, timeout, after)
    except WaitTimeout as exc:
        raise WaitTimeout(execution.id, exc.timeout, client.get(execution.id).status) from None


def _follow(
    client: Client, execution: Execution, fmt: Format, timeout: float | None, after: int
) -> Execution:
    events = client.stream(execution.id, after=after or None, queue=True, timeout=timeout)
    if not sys.stderr.isatty():
        for event in events:
            if fmt is Format.jsonl and event.seq is not None:
                emit_line(event.data)
            elif event.seq is not None:
                stderr().print(event_line(event), highlight=False)
        return client.get(execution.id)
    view = RunView(client.get(execution.id))
    with Live(view.render(), console=stderr(), refresh_per_second=8) as live:
        for event in events:
            if fmt is Format.jsonl and event.seq is not None:
                emit_line(event.data)
            view.apply(event)
            live.update(view.render())
    return client.get(execution.id)
