"""`POST /workflow/runs`: the body, the answer's models, and each run's own result."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError

from app import errors
from app.api.errors import ErrorInfo, detail, error_body, field_of, status_of
from app.api.resources import Accepted, Resource
from app.api.schemas import RunBody, accepted_resource
from app.execution.bulk import MAX_BULK_RUNS, BulkOutcome
from app.execution.manager import RunRequest
from app.workflows.model import CamelModel


class BulkRunItem(RunBody):
    """One run of a bulk request: a `POST /workflow/run` body, plus its idempotency key."""

    idempotency_key: str | None = Field(default=None, max_length=255, pattern=r"^[^\x00]*$")


class BulkRunBody(CamelModel):
    runs: list[Any] = Field(
        min_length=1,
        max_length=MAX_BULK_RUNS,
        description="each item a `POST /workflow/run` body with an optional `idempotencyKey`; "
        "each is validated on its own",
    )


class BulkItem(Resource):
    """One run's result: `httpStatus` is what `POST /workflow/run` would have answered."""

    index: int
    http_status: int = Field(alias="httpStatus")
    created: bool = Field(description="false for a replay of a known idempotency key")
    execution: Accepted | None = None
    error: ErrorInfo | None = None


class BulkResults(Resource):
    """`200`: one result per run, in the order sent."""

    results: list[BulkItem]
    created: int
    refused: int


def parse_item(index: int, raw: Any, namespace: str) -> RunRequest | errors.TurnoutError:
    """A run of the body as a request, or the error that refuses it (its own 422)."""
    try:
        item = BulkRunItem.model_validate(raw)
    except ValidationError as exc:
        details = []
        for e in exc.errors():
            loc = ["runs", index, *e.get("loc", ())]
            details.append(
                detail(
                    ["body", *loc], e.get("type", "invalid"), e.get("msg", ""), field=field_of(loc)
                )
            )
        return errors.RequestInvalid("the run is invalid", details)
    return RunRequest(
        workflow=item.workflow,
        workflow_id=item.workflow_id,
        version=item.version,
        input=item.input,
        mode=item.mode,
        timeout_ms=item.options.timeout,
        priority=item.options.priority,
        tags=item.options.tags,
        metadata=item.metadata,
        idempotency_key=item.idempotency_key,
        namespace=namespace,
    )


def results_resource(outcomes: list[BulkOutcome]) -> dict[str, Any]:
    results = []
    for index, outcome in enumerate(outcomes):
        if outcome.error is not None:
            results.append(
                {
                    "index": index,
                    "httpStatus": status_of(outcome.error),
                    "created": False,
                    "error": _error_info(outcome.error),
                }
            )
            continue
        assert outcome.record is not None
        complexity = outcome.complexity.to_dict() if outcome.complexity else None
        results.append(
            {
                "index": index,
                "httpStatus": 202,
                "created": outcome.created,
                "execution": accepted_resource(outcome.record, complexity),
            }
        )
    refused = sum(1 for o in outcomes if o.error is not None)
    created = sum(1 for o in outcomes if o.created)
    return {"results": results, "created": created, "refused": refused}


def _error_info(exc: errors.TurnoutError) -> dict[str, Any]:
    info: dict[str, Any] = error_body(exc.code, exc.message, exc.details)["error"]
    return info
