"""`turnout workflows register FILE | ls | show NAME`: the versioned registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.syntax import Syntax

from app.commands.options import ApiKey, Format, Output, Server
from app.commands.output import connected, emit, emit_all, emit_line, load_json, stdout
from app.commands.render import print_to, workflows_table

workflows = typer.Typer(help="The workflow registry: register, list and show versions.")


@workflows.command("register")
def register_workflow(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="a workflow JSON with a version")],
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Register a workflow version (validated like a run; name + version must be new)."""
    definition = load_json(f"@{file}", "FILE")
    with connected(server, api_key, output) as client:
        workflow = client.register(definition)
    if output is Format.table:
        stdout().print(f"registered {workflow.name} version {workflow.version}", markup=False)
    elif output is Format.json:
        emit(workflow.raw)
    else:
        emit_line(workflow.raw)


@workflows.command("ls")
def list_workflows(
    server: Server = None, api_key: ApiKey = None, output: Output = Format.table
) -> None:
    """List registered workflows."""
    with connected(server, api_key, output) as client:
        found = list(client.workflows())
    emit_all([w.raw for w in found], output, lambda: print_to(stdout(), workflows_table(found)))


@workflows.command("show")
def show_workflow(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    version: Annotated[str | None, typer.Option(help="a version (default: the newest)")] = None,
    server: Server = None,
    api_key: ApiKey = None,
    output: Output = Format.table,
) -> None:
    """Show a registered workflow's definition (the newest version, or --version)."""
    with connected(server, api_key, output) as client:
        workflow = client.workflow(name, version)
    if output is Format.json:
        emit(workflow.raw)
    elif output is Format.jsonl:
        emit_line(workflow.raw)
    else:
        console = stdout()
        versions = f" (versions: {', '.join(workflow.versions)})" if workflow.versions else ""
        console.print(f"{workflow.name} version {workflow.version}{versions}", markup=False)
        text = json.dumps(workflow.definition, indent=2)
        console.print(Syntax(text, "json", word_wrap=True) if console.is_terminal else text)


def register(app: typer.Typer) -> None:
    app.add_typer(workflows, name="workflows")
