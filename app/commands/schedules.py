"""`turnout schedules create|ls|get|pause|resume|delete`: schedules of registered workflows."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from app.commands.options import ApiKey, Format, Output, Server
from app.commands.output import connected, emit, emit_all, emit_line, load_json, stdout
from app.commands.render import compact, print_to, when
from turnout import Schedule

schedules = typer.Typer(help="Schedules: run a registered workflow on a cron or an interval.")

ScheduleId = Annotated[str, typer.Argument(metavar="ID", help="a schedule id")]


class Overlap(StrEnum):
    skip = "skip"
    buffer_one = "buffer_one"
    allow_all = "allow_all"
    cancel_previous = "cancel_previous"


class Mode(StrEnum):
    auto = "auto"
    immediate = "immediate"
    queued = "queued"


def _when(schedule: Schedule) -> str:
    if schedule.cron:
        return f"cron {schedule.cron} ({schedule.timezone or 'UTC'})"
    return f"every {schedule.every_ms} ms"


def schedules_table(found: Iterable[Schedule]) -> Table:
    table = Table(expand=False)
    for column in ("id", "workflow", "when", "overlap", "state", "next fire", "fired", "skipped"):
        table.add_column(column, overflow="fold")
    for s in found:
        workflow = f"{s.workflow}@{s.version}" if s.version else s.workflow
        state = "paused" if s.paused else "active"
        fire = when(s.next_fires[0]) if s.next_fires and not s.paused else ""
        table.add_row(
            s.id, workflow, _when(s), s.overlap, state, fire, str(s.fired), str(s.skipped)
        )
    return table


def _show(schedule: Schedule, output: Format) -> None:
    if output is Format.json:
        emit(schedule.raw)
    elif output is Format.jsonl:
        emit_line(schedule.raw)
    else:
        console = stdout()
        print_to(console, schedules_table([schedule]))
        console.print(f"input: {compact(schedule.input)}", markup=False, highlight=False)
        fires = ", ".join(when(at) for at in schedule.next_fires)
        console.print(f"next fires: {fires}", markup=False, highlight=False)
        if schedule.last_error:
            console.print(f"last error: {compact(schedule.last_error)}", markup=False)
        for run in schedule.recent_executions:
            line = f"  {run.get('slot')}  {run.get('status'):<10} {run.get('executionId')}"
            console.print(line, markup=False, highlight=False)


@schedules.command("create")
def create_schedule(
    workflow: Annotated[str, typer.Argument(metavar="WORKFLOW", help="a registered workflow")],
    cron: Annotated[str | None, typer.Option(help='a cron expression, e.g. "*/5 * * * *"')] = None,
    timezone: Annotated[str | None, typer.Option(help="the cron's time zone (UTC)")] = None,
    every: Annotated[int | None, typer.Option("--every-ms", help="an interval in ms")] = None,
    version: Annotated[str | None, typer.Option(help="pin a version (default: latest)")] = None,
    input: Annotated[str, typer.Option("--input", "-i", help="JSON, or @file")] = "{}",
    mode: Annotated[Mode, typer.Option(help="the runs' mode")] = Mode.auto,
    priority: Annotated[int, typer.Option(help="0-100, higher runs first")] = 0,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="repeat for several")] = None,
    overlap: Annotated[Overlap, typer.Option(help="when the previous run goes on")] = Overlap.skip,
    catchup_window_ms: Annotated[
        int | None, typer.Option(help="missed slots this recent fire after downtime")
    ] = None,
    jitter_ms: Annotated[int | None, typer.Option(help="delay each fire by up to this")] = None,
    paused: Annotated[bool, typer.Option("--paused", help="create it paused")] = False,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Create a schedule: give exactly one of --cron or --every-ms."""
    fields: dict[str, Any] = {
        "cron": cron,
        "timezone": timezone,
        "every_ms": every,
        "input": load_json(input, "--input"),
        "mode": mode.value,
        "priority": priority,
        "tags": tag or [],
        "overlap": overlap.value,
        "catchup_window_ms": catchup_window_ms,
        "jitter_ms": jitter_ms,
        "paused": paused,
    }
    if version is not None:
        fields["version"] = version
    with connected(server, api_key, output) as client:
        made = client.create_schedule(workflow, **fields)
    _show(made, output)


@schedules.command("ls")
def list_schedules(
    workflow: Annotated[str | None, typer.Option(help="only this workflow's")] = None,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """List schedules with their next fire."""
    with connected(server, api_key, output) as client:
        found = client.schedules(workflow=workflow)
    emit_all([s.raw for s in found], output, lambda: print_to(stdout(), schedules_table(found)))


@schedules.command("get")
def get_schedule(
    schedule_id: ScheduleId,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Show a schedule, its next fires and its recent executions."""
    with connected(server, api_key, output) as client:
        _show(client.schedule(schedule_id), output)


@schedules.command("pause")
def pause_schedule(
    schedule_id: ScheduleId,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Pause a schedule (no slot fires until it is resumed)."""
    with connected(server, api_key, output) as client:
        _show(client.pause_schedule(schedule_id), output)


@schedules.command("resume")
def resume_schedule(
    schedule_id: ScheduleId,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Resume a schedule from now (slots missed while paused do not fire)."""
    with connected(server, api_key, output) as client:
        _show(client.resume_schedule(schedule_id), output)


@schedules.command("delete")
def delete_schedule(
    schedule_id: ScheduleId,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Delete a schedule (its executions stay)."""
    with connected(server, api_key, output) as client:
        client.delete_schedule(schedule_id)
    if output is Format.table:
        stdout().print(f"deleted schedule {schedule_id}", markup=False)
    else:
        (emit if output is Format.json else emit_line)({"id": schedule_id, "deleted": True})


def register(app: typer.Typer) -> None:
    app.add_typer(schedules, name="schedules")
