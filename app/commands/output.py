"""What every command shares: where output goes, and the exit codes.

Only JSON goes to stdout with `-o json|jsonl`; progress, logs and errors go to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from app.commands.options import Format
from turnout import (
    ApiError,
    Client,
    Unavailable,
    Unreachable,
    ValidationFailed,
    WaitTimeout,
)

# Exit codes, the same for every command.
OK = 0
FAILED = 1  # the execution failed or was cancelled; or the server refused the request
USAGE = 2  # bad arguments, or a request or workflow the server found invalid
TIMED_OUT = 3  # waiting for the end took longer than --wait-timeout
UNREACHABLE = 4  # the server could not be reached (or stayed unavailable)

WIDE = 100_000  # piped output is never wrapped or truncated


def stdout() -> Console:
    tty = sys.stdout.isatty()
    return Console(file=sys.stdout, width=None if tty else WIDE, soft_wrap=not tty)


def stderr() -> Console:
    tty = sys.stderr.isatty()
    return Console(file=sys.stderr, width=None if tty else WIDE, soft_wrap=not tty)


def note(message: str) -> None:
    """A line for people, on stderr."""
    stderr().print(message, highlight=False, markup=False)


def emit(value: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
    sys.stdout.flush()


def emit_line(value: Any) -> None:
    """One JSON line on stdout (jsonl), flushed at once for streaming consumers."""
    sys.stdout.write(json.dumps(value, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


def emit_all(values: Sequence[Any], fmt: Format, table: Callable[[], None]) -> None:
    if fmt is Format.json:
        emit(list(values))
    elif fmt is Format.jsonl:
        for value in values:
            emit_line(value)
    else:
        table()


def load_json(value: str, what: str) -> Any:
    """A JSON value given inline, or as `@path` (a file), or `@-` (stdin)."""
    text = value
    if value.startswith("@"):
        path = value[1:]
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text()
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {path}: {exc.strerror}", param_hint=what
            ) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint=what) from exc


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str | None, what: str) -> float | None:
    """Seconds from `250ms`, `30s`, `5m`, `1h` or a bare number of seconds."""
    if value is None:
        return None
    text = value.strip().lower()
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            number, scale = text[: -len(unit)], _UNITS[unit]
            break
    else:
        number, scale = text, 1.0
    try:
        seconds = float(number) * scale
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise typer.BadParameter(
            f"{value!r} is not a duration (e.g. 500ms, 30s, 5m)", param_hint=what
        )
    return seconds


def error_json(exc: ApiError) -> dict[str, Any]:
    return {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}


def report_error(exc: Exception, fmt: Format) -> int:
    """Say what went wrong (stderr; the error JSON on stdout too in json modes): the exit code."""
    if isinstance(exc, ApiError):
        if fmt is not Format.table:
            emit_line(error_json(exc)) if fmt is Format.jsonl else emit(error_json(exc))
        note(f"error: {exc.message or exc.code} ({exc.code})")
        for problem in exc.problems:
            if problem.message != exc.message or problem.field:  # not the headline again
                note(f"  - {problem}")
        if isinstance(exc, ValidationFailed):
            return USAGE
        return UNREACHABLE if isinstance(exc, Unavailable) else FAILED
    if isinstance(exc, WaitTimeout):
        status = f" (status {exc.status})" if exc.status else ""
        note(f"error: {exc}{status}")
        return TIMED_OUT
    note(f"error: {exc}")
    return UNREACHABLE if isinstance(exc, Unreachable) else FAILED


@contextmanager
def connected(server: str | None, api_key: str | None, fmt: Format) -> Iterator[Client]:
    """A client on `--server`; the client's errors become messages and exit codes."""
    try:
        with Client(server, api_key=api_key) as client:
            yield client
    except (ApiError, Unreachable, WaitTimeout) as exc:
        raise typer.Exit(report_error(exc, fmt)) from None


def exit_for(status: str) -> int:
    return FAILED if status in ("failed", "cancelled") else OK
