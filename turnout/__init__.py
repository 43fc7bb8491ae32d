"""Turnout's Python client: `from turnout import Client, AsyncClient`.

Needs only httpx and httpx-sse; imports nothing of the server."""

from turnout.aio import AsyncClient
from turnout.client import Client
from turnout.errors import (
    ApiError,
    Conflict,
    InvalidTransition,
    NotFound,
    RateLimited,
    TurnoutError,
    Unauthorized,
    Unavailable,
    Unreachable,
    ValidationFailed,
    WaitTimeout,
)
from turnout.models import (
    Circuit,
    ErrorInfo,
    Event,
    Execution,
    Problem,
    Progress,
    SentEvent,
    Step,
    Workflow,
)
from turnout.schedules import Schedule

__all__ = [
    "ApiError",
    "AsyncClient",
    "Circuit",
    "Client",
    "Conflict",
    "ErrorInfo",
    "Event",
    "Execution",
    "InvalidTransition",
    "NotFound",
    "Problem",
    "Progress",
    "RateLimited",
    "Schedule",
    "SentEvent",
    "Step",
    "TurnoutError",
    "Unauthorized",
    "Unavailable",
    "Unreachable",
    "ValidationFailed",
    "WaitTimeout",
    "Workflow",
]
