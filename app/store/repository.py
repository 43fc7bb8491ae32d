"""The repository: the only place that speaks SQL, in one class made of focused parts."""

from __future__ import annotations

from sqlalchemy import literal, select

from app.store.creations import CreationStore
from app.store.executions import ExecutionStore
from app.store.flow import FlowStore
from app.store.settled import SettledCreationStore
from app.store.steering import ControlStore
from app.store.workflows import WorkflowStore


class Repository(
    CreationStore, SettledCreationStore, ExecutionStore, FlowStore, ControlStore, WorkflowStore
):
    """All reads and writes of executions, steps, events and registered workflows
    (FlowStore is the RunStore with the flow-control gate)."""

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(select(literal(1)))
