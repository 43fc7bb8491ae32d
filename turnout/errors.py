"""Exceptions: the API's error JSON `{"error": {code, message, details}}`, typed."""

from __future__ import annotations

import re
from typing import Any

from turnout.models import Problem


class TurnoutError(Exception):
    """Base of every error the client raises."""


class Unreachable(TurnoutError):
    """The server could not be reached (refused, DNS, TLS, or it stopped answering)."""


class WaitTimeout(TurnoutError):
    """The execution did not reach a terminal status within the wait's timeout."""

    def __init__(self, execution_id: str, timeout: float, status: str | None = None) -> None:
        self.execution_id = execution_id
        self.timeout = timeout
        self.status = status
        super().__init__(f"execution {execution_id} still not finished after {timeout:g} s")


class ApiError(TurnoutError):
    """An error answer of the API."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: Any = None,
        retry_after: float | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after
        super().__init__(f"{code}: {message}" if message else code)

    @property
    def problems(self) -> list[Problem]:
        """`details` as problems (a list of `{loc, field, code, nodeId?, message}`)."""
        if isinstance(self.details, list):
            return [Problem.from_dict(d) for d in self.details]
        return []


class Unauthorized(ApiError):
    """401 or 403: the API key is missing, unknown or lacks the scope."""


class NotFound(ApiError):
    """404: no execution, workflow or version by that name."""


class Conflict(ApiError):
    """409 other than an invalid transition: a version that exists, an idempotency clash."""


_TRANSITION = re.compile(r"from '(?P<current>[a-z_]+)' to '(?P<target>[a-z_]+)'")


class InvalidTransition(Conflict):
    """409 invalid_transition: the execution's status does not allow the verb."""

    @property
    def current_status(self) -> str | None:
        return _detail(self, "currentStatus", "current")

    @property
    def requested(self) -> str | None:
        return _detail(self, "requested", "target")


class ValidationFailed(ApiError):
    """400, 413 or 422: the request, workflow or input is invalid; `problems` has each."""


class RateLimited(ApiError):
    """429: too many requests (retried after Retry-After, a bounded number of times)."""


class Unavailable(ApiError):
    """503: a dependency of the server is down (retried after Retry-After, bounded)."""


def _detail(exc: ApiError, key: str, group: str) -> str | None:
    """A field of the error's details, whichever shape they have (a dict, or a list of
    problems carrying it), else parsed from the message."""
    details = exc.details
    if isinstance(details, dict) and isinstance(details.get(key), str):
        return str(details[key])
    if isinstance(details, list):
        for item in details:
            if isinstance(item, dict) and isinstance(item.get(key), str):
                return str(item[key])
    match = _TRANSITION.search(exc.message)
    return match.group(group) if match else None


def error_from_answer(status_code: int, body: Any, retry_after: float | None = None) -> ApiError:
    """The exception for an error answer (its JSON body already parsed, or None)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"code": f"http_{status_code}", "message": f"HTTP {status_code}"}
    code = str(error.get("code") or f"http_{status_code}")
    message = str(error.get("message") or "")
    details = error.get("details")
    cls: type[ApiError] = ApiError
    if status_code in (401, 403):
        cls = Unauthorized
    elif status_code == 404:
        cls = NotFound
    elif status_code == 409:
        cls = InvalidTransition if code == "invalid_transition" else Conflict
    elif status_code in (400, 413, 422):
        cls = ValidationFailed
    elif status_code == 429:
        cls = RateLimited
    elif status_code == 503:
        cls = Unavailable
    return cls(status_code, code, message, details, retry_after)
