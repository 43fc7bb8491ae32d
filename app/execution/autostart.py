"""`autoStart`: a registered version so marked runs once, with input `{}`, when registered.

The run's Idempotency-Key is `autostart:{namespace}:{name}:{version}` (stable across
redeploys and replicas), so whichever process registers it and however often the start is
attempted, one execution exists."""

from __future__ import annotations

import logging
from typing import Any

from app.errors import InputInvalid, TurnoutError
from app.execution.manager import ExecutionManager, RunRequest
from app.workflows.graph import CompiledWorkflow
from app.workflows.problems import validate_input

log = logging.getLogger(__name__)


def auto_start_key(namespace: str, name: str, version: str) -> str:
    return f"autostart:{namespace}:{name}:{version}"


def check_auto_start(compiled: CompiledWorkflow) -> None:
    """Before registering: an autoStart version must accept the input `{}` (else 422)."""
    if not compiled.definition.auto_start:
        return
    problems = validate_input(compiled.definition.input_schema, {})
    if problems:
        raise InputInvalid(
            "an autoStart workflow runs with the input {}, which its inputSchema refuses",
            [p.to_dict() for p in problems],
        )


async def auto_start(
    manager: ExecutionManager, namespace: str, name: str, version: str
) -> dict[str, Any]:
    """Start the registered version's one run (queued: the registration answers at once)."""
    request = RunRequest(
        workflow_id=name,
        version=version,
        input={},
        mode="queued",
        metadata={"autoStart": True},
        idempotency_key=auto_start_key(namespace, name, version),
        namespace=namespace,
    )
    try:
        submission = await manager.submit(request)
    except TurnoutError as exc:  # registered all the same: say why it did not start
        log.warning(
            "autoStart did not start",
            extra={"workflow": name, "version": version, "code": exc.code},
        )
        return {"error": {"code": exc.code, "message": exc.message}}
    record = submission.started.record
    return {"executionId": str(record.id), "created": submission.started.created}
