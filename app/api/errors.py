"""The only place HTTP status codes live: domain errors become `{"error": {...}}` answers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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
    errors.ModeNotSupported: 422,
    errors.PayloadTooLarge: 413,
    errors.ExecutionNotFound: 404,
    errors.WorkflowNotFound: 404,
    errors.WorkflowVersionExists: 409,
    errors.InvalidTransition: 409,
    errors.IdempotencyConflict: 409,
    errors.ServiceUnavailable: 503,
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _status_of(exc: errors.TurnoutError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


async def _turnout_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.TurnoutError)
    status = _status_of(exc)
    headers = {"Retry-After": "2"} if status == 503 else None
    return JSONResponse(error_body(exc.code, exc.message, exc.details), status, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {
            "loc": list(e.get("loc", ())),
            "field": ".".join(str(p) for p in e.get("loc", ())[1:]),
            "code": e.get("type", "invalid"),
            "message": e.get("msg", ""),
        }
        for e in exc.errors()
    ]
    return JSONResponse(error_body("request_invalid", "the request is invalid", details), 422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        exc.status_code, "http_error"
    )
    return JSONResponse(
        error_body(code, str(exc.detail)), exc.status_code, headers=getattr(exc, "headers", None)
    )


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
