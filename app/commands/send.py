"""`turnout emit NAME --data JSON [--id ID]`: send an event (`POST /events`)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.commands.options import ApiKey, Format, Output, Server
from app.commands.output import OK, connected, emit, emit_line, load_json, stdout


def emit_event(
    name: Annotated[str, typer.Argument(metavar="NAME", help="the event name")],
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="JSON, or @file (@- for stdin)")
    ] = None,
    event_id: Annotated[
        str | None, typer.Option("--id", help="idempotency: the same id is the same event")
    ] = None,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Send an event to the wait.event steps and `on` triggers of its name."""
    value = load_json(data, "--data") if data is not None else None
    with connected(server, api_key, output) as client:
        sent = client.send_event(name, value, id=event_id)
    if output is Format.json:
        emit(sent.raw)
    elif output is Format.jsonl:
        emit_line(sent.raw)
    else:
        console = stdout()
        console.print(f"event {sent.id}  {sent.name}", highlight=False, markup=False)
        for workflow, execution_id in sent.runs:
            console.print(f"  started {execution_id}  {workflow}", highlight=False, markup=False)
        for error in sent.raw.get("errors") or ():
            console.print(
                f"  not started  {error.get('workflow')}: {error.get('message')}",
                highlight=False,
                markup=False,
            )
    raise typer.Exit(OK)


def register(app: typer.Typer) -> None:
    app.command("emit")(emit_event)
