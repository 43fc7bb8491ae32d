"""`turnout validate | analyze | graph FILE`: in this process, with no server."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from app.commands.options import Format, Output
from app.commands.output import USAGE, emit, emit_line, load_json, note, stdout
from app.commands.render import print_to

if TYPE_CHECKING:
    from app.workflows.graph import CompiledWorkflow

File = Annotated[str, typer.Argument(metavar="FILE", help="a workflow JSON file (- for stdin)")]


class GraphFormat(StrEnum):
    text = "text"
    mermaid = "mermaid"


def _out(value: Any, fmt: Format) -> None:
    emit_line(value) if fmt is Format.jsonl else emit(value)


def _compile(file: str, fmt: Format) -> CompiledWorkflow:
    """The compiled workflow, or every problem listed and exit 2."""
    # Imported here: the commands that talk to a server do not pay for the engine.
    from app.config import get_settings
    from app.errors import PayloadTooLarge, WorkflowInvalid
    from app.nodes.registry import default_registry
    from app.workflows.graph import compile_workflow
    from app.workflows.problems import Problem

    definition = load_json("@-" if file == "-" else f"@{file}", "FILE")
    settings = get_settings()
    try:
        if not isinstance(definition, dict):
            raise WorkflowInvalid("a workflow is a JSON object", [])
        return compile_workflow(definition, default_registry(), max_nodes=settings.max_nodes)
    except (WorkflowInvalid, PayloadTooLarge) as exc:
        problems = exc.details if isinstance(exc.details, list) else []
        if not problems:
            problems = [Problem((), exc.code, exc.message).to_dict()]
        if fmt is not Format.table:
            _out({"valid": False, "problems": problems}, fmt)
        note(f"{file}: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
        for p in problems:
            where = p.get("field") or "workflow"
            node = f" (node {p['nodeId']})" if p.get("nodeId") else ""
            note(f"  - {where}{node}: {p.get('message')} [{p.get('code')}]")
        raise typer.Exit(USAGE) from None


def validate(file: File, output: Output = Format.table) -> None:
    """Check a workflow file and list every problem (exit 2 if there is any)."""
    compiled = _compile(file, output)
    if output is Format.table:
        stdout().print(f"{file}: valid, {len(compiled.nodes)} nodes", markup=False)
    else:
        _out({"valid": True, "problems": [], "nodes": len(compiled.nodes)}, output)


def analyze(file: File, output: Output = Format.table) -> None:
    """The complexity analysis, its reasons, and the mode `auto` would choose."""
    from app.config import get_settings
    from app.execution.complexity import ComplexityAnalyzer, ComplexityThresholds
    from app.nodes.registry import default_registry

    compiled = _compile(file, output)
    thresholds = ComplexityThresholds.from_settings(get_settings())
    analyzer = ComplexityAnalyzer(thresholds, registry=default_registry())
    analysis = analyzer.analyze(compiled).to_dict()
    if output is not Format.table:
        _out(analysis, output)
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key in ("nodeCount", "externalCalls", "loops", "parallelPaths", "humanInput"):
        grid.add_row(key, str(analysis[key]))
    grid.add_row("estimatedDurationMs", f"{analysis['estimatedDurationMs']:g}")
    grid.add_row("score", str(analysis["score"]))
    grid.add_row("auto runs it", str(analysis["recommendedMode"]))
    for reason in analysis["reasons"]:
        grid.add_row("reason", reason)
    print_to(stdout(), grid)


def graph(
    file: File,
    format: Annotated[GraphFormat, typer.Option("--format", "-f")] = GraphFormat.text,
    output: Output = Format.table,
) -> None:
    """The workflow's DAG, as text or as a Mermaid flowchart."""
    compiled = _compile(file, output)
    edges = [
        (dep, node_id) for node_id, node in compiled.nodes.items() for dep in sorted(node.deps)
    ]
    if output is not Format.table:
        nodes = [{"id": n.id, "type": n.definition.type} for n in compiled.nodes.values()]
        _out({"nodes": nodes, "edges": [list(e) for e in edges]}, output)
        return
    console = stdout()
    if format is GraphFormat.mermaid:
        console.print("flowchart TD", markup=False)
        for node in compiled.nodes.values():
            console.print(f'  {node.id}["{node.id}: {node.definition.type}"]', markup=False)
        for dep, node_id in edges:
            console.print(f"  {dep} --> {node_id}", markup=False)
        return
    for node in compiled.nodes.values():
        children = compiled.dependents.get(node.id, ())
        arrow = f" -> {', '.join(children)}" if children else ""
        console.print(f"{node.id} ({node.definition.type}){arrow}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    for command in (validate, analyze, graph):
        app.command()(command)
