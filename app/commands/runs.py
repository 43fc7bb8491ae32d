"""`turnout run`, `get`, `wait`, `ls` and `events`: start executions and look at them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from app.commands.batch import run_batch
from app.commands.live import follow
from app.commands.options import ApiKey, ExecutionId, Format, Output, Server
from app.commands.output import (
    connected,
    emit,
    emit_all,
    emit_line,
    exit_for,
    load_json,
    note,
    parse_duration,
    stdout,
)
from app.commands.render import event_line, execution_view, executions_table, print_to
from turnout import Execution

WaitTimeoutOpt = Annotated[
    str | None,
    typer.Option("--wait-timeout", help="Give up waiting after this long (exit 3): 30s, 5m"),
]


def workflow_source(target: str) -> str | dict[str, Any]:
    """A definition from a JSON file, or else the name of a registered workflow."""
    path = Path(target)
    if path.is_file() or target.endswith(".json"):
        definition = load_json(f"@{target}", "FILE")
        if not isinstance(definition, dict):
            raise typer.BadParameter("a workflow file holds one JSON object", param_hint="FILE")
        return definition
    return target


def show(execution: Execution, fmt: Format) -> None:
    if fmt is Format.json:
        emit(execution.raw)
    elif fmt is Format.jsonl:
        emit_line(execution.raw)
    else:
        print_to(stdout(), execution_view(execution))


def run(
    target: Annotated[
        str | None, typer.Argument(metavar="FILE|NAME", help="workflow file or name")
    ] = None,
    input: Annotated[
        str | None, typer.Option("--input", "-i", help="input JSON, or @file (@- for stdin)")
    ] = None,
    mode: Annotated[str, typer.Option(help="auto, immediate or queued")] = "auto",
    version: Annotated[str | None, typer.Option(help="registered version (NAME only)")] = None,
    priority: Annotated[int | None, typer.Option(help="0-100, higher first")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="repeatable")] = None,
    timeout: Annotated[
        str | None, typer.Option(help="fail the run after this long on the server: 30s, 5m")
    ] = None,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="print the accepted run and return")
    ] = False,
    wait_timeout: WaitTimeoutOpt = None,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch",
            metavar="FILE",
            help="queue every run of FILE in one request (JSONL or a JSON array of run "
            "bodies; - for stdin); exit 1 if any run was refused",
        ),
    ] = None,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Run a workflow and follow it live (exit 0 completed, 1 failed or cancelled)."""
    if (target is None) == (batch is None):
        raise typer.BadParameter(
            "give a workflow FILE|NAME, or --batch FILE", param_hint="FILE|NAME"
        )
    if batch is not None:
        run_batch(batch, server, api_key, output)
        return
    assert target is not None
    if mode not in ("auto", "immediate", "queued"):
        raise typer.BadParameter("auto, immediate or queued", param_hint="--mode")
    source = workflow_source(target)
    data = load_json(input, "--input") if input is not None else {}
    run_timeout = parse_duration(timeout, "--timeout")
    wait_s = parse_duration(wait_timeout, "--wait-timeout")
    with connected(server, api_key, output) as client:
        execution = client.run(
            source,
            data,
            mode=mode,
            version=version,
            priority=priority,
            tags=tag,
            timeout=run_timeout,
            idempotency_key=idempotency_key,
        )
        followed = not execution.terminal and not detach
        if followed:
            note(f"execution {execution.id} {execution.status} ({execution.mode})")
            execution = follow(client, execution, output, wait_s)
        if not (followed and output is Format.jsonl):  # jsonl: the events were the output
            show(execution, output)
    raise typer.Exit(exit_for(execution.status))


def get(
    execution_id: ExecutionId,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Show an execution: status, result or error, and its steps."""
    with connected(server, api_key, output) as client:
        show(client.get(execution_id), output)


def wait(
    execution_id: ExecutionId,
    timeout: Annotated[str | None, typer.Option(help="give up after (exit 3): 30s, 5m")] = None,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Wait for an execution to end (exit 0 completed, 1 failed or cancelled, 3 timeout)."""
    seconds = parse_duration(timeout, "--timeout")
    with connected(server, api_key, output) as client:
        execution = client.wait(execution_id, seconds)
        show(execution, output)
    raise typer.Exit(exit_for(execution.status))


def ls(
    status: Annotated[list[str] | None, typer.Option("--status", "-s", help="repeatable")] = None,
    workflow: Annotated[str | None, typer.Option("--workflow", "-w")] = None,
    tag: Annotated[str | None, typer.Option("--tag", "-t")] = None,
    mode: Annotated[str | None, typer.Option(help="immediate or queued")] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many, newest first")] = 50,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """List executions, newest first."""
    with connected(server, api_key, output) as client:
        found = list(client.list(status=status, workflow=workflow, tag=tag, mode=mode, limit=limit))
    emit_all([e.raw for e in found], output, lambda: print_to(stdout(), executions_table(found)))


def events(
    execution_id: ExecutionId,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="keep following until the execution ends")
    ] = False,
    after: Annotated[int, typer.Option(min=0, help="only events after this seq")] = 0,
    timeout: Annotated[str | None, typer.Option(help="with --follow: give up after")] = None,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """An execution's events (with --follow: live, until it ends; exit code as `run`)."""
    seconds = parse_duration(timeout, "--timeout") if follow_ else None
    with connected(server, api_key, output) as client:
        if not follow_:
            stored = client.events(execution_id, after=after or None)
            emit_all([e.data for e in stored], output, lambda: _print_events(stored))
            return
        found: list[dict[str, Any]] = []
        console = stdout()
        for event in client.stream(execution_id, after=after or None, timeout=seconds):
            if output is Format.jsonl:
                emit_line(event.data)
            elif output is Format.json:
                found.append(event.data)
            else:
                console.print(event_line(event), highlight=False)
        if output is Format.json:
            emit(found)
        status = client.get(execution_id).status
    raise typer.Exit(exit_for(status))


def _print_events(found: Any) -> None:
    console = stdout()
    for event in found:
        console.print(event_line(event), highlight=False)


def register(app: typer.Typer) -> None:
    for command in (run, get, wait, ls, events):
        app.command()(command)
