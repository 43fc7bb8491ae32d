"""The only place HTTP status codes live: domain errors become `{"error": {...}}` answers."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import errors
from app.store.database import is_unavailable

log = logging.getLogger(__name__)

STATUS: dict[type[errors.TurnoutError], int] = {
    errors.WorkflowInvalid: 422,
    errors.InputInvalid: 422,
    errors.RequestInvalid: 422,
    errors.PayloadTooLarge: 413,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.RateLimited: 429,
    errors.ExecutionNotFound: 404,
    errors.WorkflowNotFound: 404,
    errors.ScheduleNotFound: 404,
    errors.CircuitNotFound: 404,
    errors.SubscriptionNotFound: 404,
    errors.DeliveryNotFound: 404,
    errors.WorkflowVersionExists: 409,
    errors.InvalidTransition: 409,
    errors.IdempotencyConflict: 409,
    errors.ServiceUnavailable: 503,
}


class ErrorDetail(BaseModel):
    """One problem: where (`loc`, `field`), what (`code`, `message`), and the node if any."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(description='path to the problem, e.g. ["nodes", 0, "id"]')
    field: str = Field(description='`loc` as one dotted string ("" for the whole body)')
    code: str
    node_id: str | None = Field(default=None, alias="nodeId")
    message: str


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail]


class ErrorResponse(BaseModel):
    """Every error answer: `{"error": {"code", "message", "details": [...]}}`."""

    error: ErrorInfo


_DESCRIPTIONS = {
    400: "bad request",
    401: "no valid API key (send Authorization: Bearer <key>)",
    403: "the key lacks the scope this request needs",
    404: "not found",
    405: "method not allowed",
    409: "conflict with the current state",
    413: "request body or definition too large",
    415: "the body is not sent as JSON",
    422: "the request is invalid (every problem in details)",
    429: "too many requests with this key; retry after Retry-After seconds",
    503: "a dependency is unavailable; retry after Retry-After seconds",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses (503 is always possible)."""
    return {
        status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        for status in sorted({*statuses, 503})
    }


def field_of(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def detail(
    loc: Iterable[str | int], code: str, message: str, *, field: str | None = None, **extra: Any
) -> dict[str, Any]:
    """One entry of `details`; `nodeId` and other extra facts only when they are set."""
    parts = list(loc)
    out: dict[str, Any] = {
        "loc": parts,
        "field": field if field is not None else field_of(parts),
        "code": code,
    }
    out.update({k: v for k, v in extra.items() if v is not None})
    out["message"] = message
    return out


def normalise_details(raw: Any, code: str, message: str) -> list[dict[str, Any]]:
    """Any domain error's details as the one list shape (None is an empty list)."""
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for item in items:
        if not isinstance(item, Mapping):
            out.append(detail([], code, str(item)))
            continue
        extra = {k: v for k, v in item.items() if k not in ("loc", "field", "code", "message")}
        loc = item.get("loc") or []
        out.append(
            detail(
                [p if isinstance(p, int) else str(p) for p in loc],
                str(item.get("code") or code),
                str(item.get("message") or message),
                field=item.get("field"),
                **extra,
            )
        )
    return out


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": normalise_details(details, code, message),
        }
    }


def error_answer(exc: errors.TurnoutError) -> JSONResponse:
    """The answer for a domain error raised outside a route (e.g. by a middleware)."""
    status = status_of(exc)
    headers = {"Retry-After": "2"} if status == 503 else None
    if isinstance(exc, errors.RateLimited):
        headers = {"Retry-After": str(exc.retry_after_s)}
    elif isinstance(exc, errors.Unauthorized):
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(error_body(exc.code, exc.message, exc.details), status, headers=headers)


def status_of(exc: errors.TurnoutError) -> int:
    """The HTTP status of a domain error (also a bulk request's per-run status)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


async def _turnout_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.TurnoutError)
    if not isinstance(exc, errors.InvalidTransition):
        return error_answer(exc)
    details = [
        detail(["status"], exc.code, exc.message, currentStatus=exc.current, requested=exc.target)
    ]
    return JSONResponse(error_body(exc.code, exc.message, details), status_of(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    unsupported = _unsupported_media_type(request, problems)
    if unsupported is not None:
        return unsupported
    bad_json = next((e for e in problems if e.get("type") == "json_invalid"), None)
    if bad_json is not None:
        return _bad_json(_json_position(bad_json, exc.body))
    details = []
    for e in problems:
        loc = list(e.get("loc", ()))
        # The field leaves out where it came from: "body.options.priority" is "options.priority".
        field = field_of(loc[1:])
        details.append(detail(loc, e.get("type", "invalid"), e.get("msg", ""), field=field))
    return JSONResponse(error_body("request_invalid", "the request is invalid", details), 422)


def _json_position(problem: Mapping[str, Any], doc: Any) -> str:
    """The parser's own words, with its line and column (FastAPI keeps only the offset)."""
    reason = str((problem.get("ctx") or {}).get("error") or "invalid JSON")
    loc = problem.get("loc", ())
    pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    if pos is None or not isinstance(doc, str):
        return reason
    located = json.JSONDecodeError(reason, doc, pos)
    return f"{reason}: line {located.lineno} column {located.colno}"


def _bad_json(reason: str) -> JSONResponse:
    message = f"request body is not valid JSON: {reason}"
    return JSONResponse(
        error_body(
            "request_invalid", message, [detail(["body"], "json_invalid", message, field="")]
        ),
        422,
    )


def _unsupported_media_type(
    request: Request, problems: Iterable[Mapping[str, Any]]
) -> JSONResponse | None:
    """A body sent as something other than JSON (e.g. curl -d's form type) is a 415."""
    content_type = request.headers.get("content-type", "")
    if not content_type or _is_json(content_type):
        return None
    if not any(e.get("loc", ())[:1] == ("body",) for e in problems):
        return None
    message = (
        f"the request body must be JSON sent with 'Content-Type: application/json' "
        f"(got '{content_type[:100]}'); a body without a Content-Type is read as JSON"
    )
    return JSONResponse(error_body("unsupported_media_type", message), 415)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        return _bad_json(str(exc.__cause__))
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.url.path}"
    return JSONResponse(error_body(code, message), exc.status_code, headers=headers or None)


def _allowed_methods(request: Request) -> str:
    """Every method the API serves at this path (Starlette names only the first route's)."""
    app = request.app
    table: list[tuple[re.Pattern[str], str]] | None = getattr(app.state, "allow_table", None)
    if table is None:
        table = []
        for path, item in app.openapi().get("paths", {}).items():
            pattern = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$")
            table.append((pattern, ", ".join(sorted(m.upper() for m in item))))
        app.state.allow_table = table
    return next((methods for pattern, methods in table if pattern.match(request.url.path)), "")


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if not is_unavailable(exc):
        return await _unexpected(request, exc)
    return await _unavailable(request, exc)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("dependency unavailable", extra={"error": str(exc)[:200]})
    return JSONResponse(
        error_body(
            "service_unavailable",
            "a dependency (database or Redis) is unavailable; try again shortly",
        ),
        503,
        headers={"Retry-After": "2"},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"path": request.url.path})
    return JSONResponse(error_body("internal_error", "an internal error occurred"), 500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.TurnoutError, _turnout_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(OSError, _database_error)
    app.add_exception_handler(RedisConnectionError, _unavailable)
    app.add_exception_handler(RedisTimeoutError, _unavailable)
    app.add_exception_handler(Exception, _unexpected)


class BodySizeLimit:
    """Answers 413 before reading more than `max_bytes` of a request body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # An HTTPException passes through the body parser to our handler as 413.
                    raise StarletteHTTPException(413, self._message)
            return message

        await self.app(scope, limited_receive, send)

    @property
    def _message(self) -> str:
        return f"the request body exceeds {self.max_bytes} bytes"

    async def _reject(self, send: Send) -> None:
        response = JSONResponse(
            error_body("payload_too_large", self._message),
            413,
        )
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
