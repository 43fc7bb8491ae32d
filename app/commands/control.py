"""`turnout cancel|pause|resume ID...`, `retry`, `input`, and cancel by filter."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from app.commands.options import ApiKey, ExecutionId, Format, Output, Server
from app.commands.output import (
    FAILED,
    OK,
    USAGE,
    connected,
    emit,
    emit_line,
    error_json,
    load_json,
    note,
    stdout,
)
from app.commands.runs import show
from turnout import ApiError, Client, Execution

Ids = Annotated[list[str] | None, typer.Argument(metavar="ID...", show_default=False)]


def _apply(
    client: Client, ids: list[str], verb: Callable[[str], Execution], fmt: Format, past: str
) -> int:
    """Apply the verb to each id in turn and report each result: exit 1 if any failed."""
    results: list[dict[str, Any]] = []
    code = OK
    console = stdout()
    for execution_id in ids:
        try:
            execution = verb(execution_id)
        except ApiError as exc:
            code = FAILED
            results.append({"executionId": execution_id, **error_json(exc)})
            note(f"{execution_id}: {exc.message or exc.code} ({exc.code})")
            continue
        results.append(execution.raw)
        if fmt is Format.table:
            already = "" if execution.changed is not False else f" (already {execution.status})"
            console.print(f"{execution_id}  {past}{already}", highlight=False, markup=False)
    if fmt is Format.json:
        emit(results)
    elif fmt is Format.jsonl:
        for result in results:
            emit_line(result)
    return code


def cancel(
    ids: Ids = None,
    status: Annotated[
        list[str] | None, typer.Option("--status", "-s", help="cancel every match")
    ] = None,
    workflow: Annotated[str | None, typer.Option("--workflow", "-w")] = None,
    tag: Annotated[str | None, typer.Option("--tag", "-t")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Cancel executions by id, or every one matching --status/--workflow/--tag."""
    by_filter = bool(status or workflow or tag)
    if bool(ids) == by_filter:
        note("error: give execution ids, or filters (--status, --workflow, --tag), not both")
        raise typer.Exit(USAGE)
    with connected(server, api_key, output) as client:
        targets = list(ids or ())
        if by_filter:
            targets = [e.id for e in client.list(status=status, workflow=workflow, tag=tag)]
            if not targets:
                note("no execution matches")
                if output is Format.json:
                    emit([])
                raise typer.Exit(OK)
            for execution_id in targets:
                note(f"  {execution_id}")
            if not yes:
                if not sys.stdin.isatty():
                    note(f"error: {len(targets)} executions match; add --yes to cancel them")
                    raise typer.Exit(USAGE)
                typer.confirm(f"cancel these {len(targets)} executions?", abort=True, err=True)
        code = _apply(client, targets, client.cancel, output, "cancelled")
    raise typer.Exit(code)


def pause(
    ids: Annotated[list[str], typer.Argument(metavar="ID...")],
    abort: Annotated[
        bool, typer.Option("--abort", help="cancel running steps (re-run on resume)")
    ] = False,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Pause executions: no new step starts."""
    with connected(server, api_key, output) as client:
        code = _apply(client, ids, lambda i: client.pause(i, abort=abort), output, "paused")
    raise typer.Exit(code)


def resume(
    ids: Annotated[list[str], typer.Argument(metavar="ID...")],
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Resume paused executions."""
    with connected(server, api_key, output) as client:
        code = _apply(client, ids, client.resume, output, "resumed")
    raise typer.Exit(code)


def retry(
    execution_id: ExecutionId,
    from_: Annotated[
        str, typer.Option("--from", help="failed (keep completed steps) or start")
    ] = "failed",
    version: Annotated[
        str | None, typer.Option(help='"latest" or a registered version to switch to')
    ] = None,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Retry a failed or cancelled execution (a new attempt of the same id)."""
    if from_ not in ("failed", "start"):
        raise typer.BadParameter("failed or start", param_hint="--from")
    with connected(server, api_key, output) as client:
        show(client.retry(execution_id, from_=from_, version=version), output)


def give_input(
    execution_id: ExecutionId,
    node: Annotated[str, typer.Argument(metavar="NODE", help="the waiting human.input node")],
    data: Annotated[str, typer.Option("--data", help="JSON, or @file (@- for stdin)")],
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Give a waiting human.input step its data."""
    value = load_json(data, "--data")
    with connected(server, api_key, output) as client:
        show(client.input(execution_id, node, value), output)


def register(app: typer.Typer) -> None:
    for command in (cancel, pause, resume, retry):
        app.command()(command)
    app.command("input")(give_input)
