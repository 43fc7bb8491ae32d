"""`turnout circuits ls | reset HOST`: the circuit breakers of `http.request`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from app.commands.options import ApiKey, Format, Output, Server
from app.commands.output import connected, emit, emit_all, emit_line, stdout
from app.commands.render import print_to, when
from turnout import Circuit

circuits = typer.Typer(help="Circuit breakers of http.request: list them, reset one by hand.")

STATE_STYLE = {"closed": "green", "half_open": "yellow", "open": "red"}


def circuits_table(items: Iterable[Circuit]) -> Table:
    table = Table(expand=False)
    for column in ("host", "state", "failures", "opened", "next probe", "opens", "thresholds"):
        table.add_column(column, overflow="fold")
    for c in items:
        s = c.settings
        own = "" if c.name == c.host else " (node's own)"
        thresholds = f"{s.get('failures')} in {s.get('windowMs')} ms, cool-down " + (
            f"{s.get('cooldownMs')} ms{own}"
        )
        table.add_row(
            c.host,
            Text(c.state, style=STATE_STYLE.get(c.state, "")),
            str(c.failures),
            when(c.opened_at),
            when(c.next_probe_at),
            str(c.opens),
            thresholds,
        )
    return table


@circuits.command("ls")
def list_circuits(
    server: Server = None, api_key: ApiKey = None, output: Output = Format.table
) -> None:
    """List the namespace's breakers: state, failures, when the next probe may go."""
    with connected(server, api_key, output) as client:
        found = client.circuits()
    emit_all([c.raw for c in found], output, lambda: print_to(stdout(), circuits_table(found)))


@circuits.command("reset")
def reset_circuit(
    host: Annotated[str, typer.Argument(metavar="HOST", help="host:port, or host (every port)")],
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Close a host's breakers by hand (admin; audited)."""
    with connected(server, api_key, output) as client:
        names = client.reset_circuit(host)
    if output is Format.table:
        stdout().print(f"reset {', '.join(names)}", markup=False)
    elif output is Format.json:
        emit({"reset": list(names)})
    else:
        emit_line({"reset": list(names)})


def register(app: typer.Typer) -> None:
    app.add_typer(circuits, name="circuits")
