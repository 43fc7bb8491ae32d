"""Executions written straight into the store, and waiting for them to reach a status."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from app.engine.status import Status
from app.store.records import ExecutionRecord, NewExecution
from app.store.repository import Repository


def new_queued(definition: dict[str, Any], **overrides: Any) -> NewExecution:
    """A `pending` queued execution of `definition`, not yet written."""
    return NewExecution(
        id=uuid.uuid4(),
        workflow_name="test",
        workflow_id=None,
        workflow_version=None,
        status=Status.PENDING,
        execution_mode="queued",
        requested_mode="queued",
        definition=definition,
        complexity=None,
        progress_total=len(definition["nodes"]),
        **{"input": {}, **overrides},
    )


async def insert_pending(
    repo: Repository, definition: dict[str, Any], **overrides: Any
) -> uuid.UUID:
    """A committed `pending` queued execution (with its `execution.created` event), no job."""
    new = new_queued(definition, **overrides)
    record, _ = await repo.create_execution(new, [("execution.created", {})])
    return record.id


async def wait_status(
    repo: Repository, execution_id: uuid.UUID, *statuses: str, timeout_s: float = 10.0
) -> ExecutionRecord:
    """The execution (with its steps) once it has one of `statuses`; fails after the timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        record = await repo.get_execution(execution_id)
        if record.status in statuses:
            return record
        if loop.time() > deadline:
            raise AssertionError(f"{execution_id} stayed {record.status}, not {statuses}")
        await asyncio.sleep(0.02)


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], what: str, *, timeout_s: float = 10.0
) -> None:
    """Poll `condition` (sync or async) until it holds; fail naming `what` after the timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not {what} after {timeout_s} s")
        await asyncio.sleep(0.01)
