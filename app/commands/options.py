"""The options every client command takes (the same names and environment variables)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer


class Format(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"


Server = Annotated[
    str | None,
    typer.Option(
        "--server", envvar="TURNOUT_URL", help="Turnout's URL [default: http://127.0.0.1:8000]"
    ),
]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", envvar="TURNOUT_API_KEY", help="Bearer API key")
]
Output = Annotated[
    Format, typer.Option("--output", "-o", help="table (for people), json, or jsonl")
]
ExecutionId = Annotated[str, typer.Argument(metavar="ID", help="an execution id")]
