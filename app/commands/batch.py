"""`turnout run --batch FILE`: queue many runs in one request (`POST /workflow/runs`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from app.commands.options import Format
from app.commands.output import FAILED, OK, connected, emit_all, error_json, note, stdout
from app.commands.render import print_to
from turnout import ApiError, Execution


def load_runs(target: str) -> list[dict[str, Any]]:
    """Runs from a file (`-` for stdin): a JSON array of run bodies, or one per line (JSONL)."""
    try:
        text = sys.stdin.read() if target == "-" else Path(target).read_text()
    except OSError as exc:
        message = f"cannot read {target}: {exc.strerror}"
        raise typer.BadParameter(message, param_hint="--batch") from None
    stripped = text.strip()
    runs: list[Any]
    if stripped.startswith("["):
        try:
            loaded = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"not a JSON array: {exc}", param_hint="--batch") from None
        runs = loaded if isinstance(loaded, list) else []
    else:
        runs = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                runs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                message = f"line {number} is not JSON: {exc}"
                raise typer.BadParameter(message, param_hint="--batch") from None
    if not runs or not all(isinstance(run, dict) for run in runs):
        message = "the file holds no runs, or an item that is not a JSON object"
        raise typer.BadParameter(message, param_hint="--batch")
    return [dict(run) for run in runs]


def run_batch(target: str, server: str | None, api_key: str | None, output: Format) -> None:
    """Queue every run of the file; exit 0 when all were accepted, 1 when any was refused."""
    runs = load_runs(target)
    with connected(server, api_key, output) as client:
        results = client.run_many(runs)
    rows = [_row(i, r) for i, r in enumerate(results)]
    emit_all(rows, output, lambda: print_to(stdout(), _table(rows)))
    refused = sum(1 for r in results if isinstance(r, ApiError))
    note(f"{len(results) - refused} queued, {refused} refused")
    raise typer.Exit(FAILED if refused else OK)


def _row(index: int, result: Execution | ApiError) -> dict[str, Any]:
    if isinstance(result, ApiError):
        return {"index": index, "httpStatus": result.status_code, **error_json(result)}
    return {"index": index, "httpStatus": 202, "execution": result.raw}


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table("#", "result", "execution / error")
    for row in rows:
        if "execution" in row:
            table.add_row(
                str(row["index"]), row["execution"]["status"], row["execution"]["executionId"]
            )
        else:
            error = row["error"]
            table.add_row(str(row["index"]), error["code"], error["message"])
    return table
