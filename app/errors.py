"""Domain exceptions. HTTP status codes for them live only in `app.api.errors`."""

from __future__ import annotations

from typing import Any


class TurnoutError(Exception):
    """Something went wrong in Turnout."""

    code = "error"

    def __init__(self, message: str | None = None, details: Any = None) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.details = details
        super().__init__(self.message)


class WorkflowInvalid(TurnoutError):
    """The workflow definition is invalid."""

    code = "workflow_invalid"


class InputInvalid(TurnoutError):
    """The input does not match the workflow's inputSchema."""

    code = "input_invalid"


class RequestInvalid(TurnoutError):
    """The request is invalid."""

    code = "request_invalid"


class PayloadTooLarge(TurnoutError):
    """The request body or definition exceeds the configured limits."""

    code = "payload_too_large"


class Unauthorized(TurnoutError):
    """A valid API key is needed: send `Authorization: Bearer <key>`."""

    code = "unauthorized"


class Forbidden(TurnoutError):
    """This key does not have the scope this request needs."""

    code = "forbidden"


class RateLimited(TurnoutError):
    """Too many requests with this key; slow down and retry after Retry-After seconds."""

    code = "rate_limited"

    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(None, {"retryAfterSeconds": retry_after_s})


class ExecutionNotFound(TurnoutError):
    """No execution has this id."""

    code = "execution_not_found"


class WorkflowNotFound(TurnoutError):
    """No registered workflow has this name (and version)."""

    code = "workflow_not_found"


class CircuitNotFound(TurnoutError):
    """No circuit breaker for this host in this namespace (none has been used yet)."""

    code = "circuit_not_found"


class SubscriptionNotFound(TurnoutError):
    """No event subscription has this id."""

    code = "subscription_not_found"


class DeliveryNotFound(TurnoutError):
    """This subscription has no delivery with this id."""

    code = "delivery_not_found"


class WorkflowVersionExists(TurnoutError):
    """This workflow name and version are already registered."""

    code = "workflow_version_exists"


class InvalidTransition(TurnoutError):
    """The execution cannot make this transition from its current status."""

    code = "invalid_transition"

    def __init__(self, current: str, target: str, message: str | None = None) -> None:
        self.current = current
        self.target = target
        super().__init__(
            message or f"cannot go from '{current}' to '{target}'",
            {"currentStatus": current, "requested": target},
        )


class IdempotencyConflict(TurnoutError):
    """This Idempotency-Key was already used with a different request body."""

    code = "idempotency_conflict"


class LeaseLost(TurnoutError):
    """This runner no longer holds the execution's lease; another owner took over."""

    code = "lease_lost"


class ServiceUnavailable(TurnoutError):
    """A dependency (database or Redis) is unavailable; try again shortly."""

    code = "service_unavailable"


class SchemaNotMigrated(ServiceUnavailable):
    """The database schema is older than this version of Turnout: run `turnout migrate`."""

    code = "schema_not_migrated"


class StepError(TurnoutError):
    """A step failed."""

    code = "step_failed"
    retryable = True


class ExpressionError(StepError):
    """An expression could not be evaluated."""

    code = "expression_error"
    retryable = False


class ExpressionLimit(ExpressionError):
    """An expression needed more work or memory than one evaluation may use."""

    code = "expression_limit"


class ParamsInvalid(StepError):
    """A step's evaluated params do not match its type."""

    code = "params_invalid"
    retryable = False


class OutputNotJSON(StepError):
    """A step's output is not a JSON value (see app/jsonvalue.py)."""

    code = "output_not_json"
    retryable = False


class StepTimeout(StepError):
    """A step ran longer than its timeout."""

    code = "step_timeout"


class ScheduleNotFound(TurnoutError):
    """No such schedule."""

    code = "schedule_not_found"
