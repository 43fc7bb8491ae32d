"""The live view of `turnout run`: what it shows as events arrive (no I/O)."""

from __future__ import annotations

from rich.console import Console

from app.commands.live import RunView
from turnout import Event, Execution


def frame(type_: str, seq: int | None, **data: object) -> Event:
    return Event.from_frame(type_, {"type": type_, "seq": seq, **data}, None)


def test_view_shows_queue_position_then_steps_and_progress() -> None:
    pending = Execution.from_dict(
        {"executionId": "e1", "status": "pending", "mode": "queued", "queuePosition": 3,
         "progress": {"done": 0, "total": 2}}
    )  # fmt: skip
    view = RunView(pending)
    view.apply(Event.from_frame("queue", {"queuePosition": 1}, None))
    console = Console(width=120, record=True)
    console.print(view.render())
    shown = console.export_text()
    assert "queue position 1" in shown and "0/2 steps" in shown

    view.apply(frame("execution.started", 2))
    view.apply(frame("step.started", 3, nodeId="a", stepKey="a", attempt=1))
    view.apply(frame("step.retrying", 4, nodeId="a", stepKey="a", attempt=2))
    view.apply(
        frame("step.completed", 5, nodeId="a", stepKey="a", durationMs=12.5,
              progress={"done": 1, "total": 2})
    )  # fmt: skip
    console = Console(width=120, record=True)
    console.print(view.render())
    shown = console.export_text()
    assert "queue position" not in shown and "running" in shown
    assert "1/2 steps" in shown and "12.5 ms" in shown
    row = next(line for line in shown.splitlines() if " a " in line)
    assert "completed" in row and " 2 " in row
