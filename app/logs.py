"""Structured logging: one JSON object per line (or plain text for humans)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the engine logs through this module: it must not load the settings
    from app.config import Settings

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

# What a running step adds to every log line written while it runs (any logger, any task it
# starts): execution_id, node_id, attempt, and trace_id when tracing is on.
_step_fields: ContextVar[dict[str, Any] | None] = ContextVar("turnout_log_fields", default=None)


class _LogContext:
    """`with log_context(...)`: a class, not a generator (it runs around every step)."""

    __slots__ = ("_fields", "_token")

    def __init__(self, fields: dict[str, Any]) -> None:
        self._fields = fields
        self._token: Token[dict[str, Any] | None] | None = None

    def __enter__(self) -> None:
        self._token = _step_fields.set({**(_step_fields.get() or {}), **self._fields})

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _step_fields.reset(self._token)
            self._token = None


def log_context(**fields: Any) -> AbstractContextManager[None]:
    return _LogContext(fields)


@contextmanager
def no_log_context() -> Iterator[None]:
    """Work done inside a step for another execution (a child's submission) logs as itself."""
    token = _step_fields.set(None)
    try:
        yield
    finally:
        _step_fields.reset(token)


def _trace_id() -> str | None:
    from app.observability.tracing import current_trace_id

    return current_trace_id()


_base_factory = logging.getLogRecordFactory()


def _record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    fields = _step_fields.get()
    if fields:
        for key, value in fields.items():
            record.__dict__.setdefault(key, value)
        trace_id = _trace_id()
        if trace_id is not None:
            record.__dict__.setdefault("trace_id", trace_id)
    return record


if getattr(_base_factory, "__name__", "") != "_record_factory":  # once, even on reload
    logging.setLogRecordFactory(_record_factory)


class JsonFormatter(logging.Formatter):
    """Log records as JSON with their `extra` fields; tracebacks stay in the log."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # Chatty libraries speak only at DEBUG: arq logs two lines per job (start, end) that say
    # less than Turnout's own execution logs, alembic says which migrations ran at every start,
    # and httpx logs every request an `http.request` step makes.
    level = logging.getLevelName(settings.log_level.upper())
    quiet = logging.DEBUG if level == logging.DEBUG else logging.WARNING
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)


QUIET_LOGGERS = ("arq.worker", "alembic", "httpx", "httpcore")
