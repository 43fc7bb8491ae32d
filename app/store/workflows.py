"""The versioned workflow registry."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from app.engine.state import utcnow
from app.store.base import StoreBase, workflow_record
from app.store.records import WorkflowRecord
from app.store.tables import workflows


class WorkflowStore(StoreBase):
    """The versioned workflow registry."""

    async def create_workflow(
        self, name: str, version: str, definition: dict[str, Any], namespace: str = "default"
    ) -> WorkflowRecord | None:
        """Register a version; None if this name and version already exist."""
        record = WorkflowRecord(uuid4(), name, version, definition, utcnow())
        try:
            async with self._write() as conn:
                await conn.execute(
                    insert(workflows),
                    [
                        {
                            "id": record.id,
                            "name": name,
                            "version": version,
                            "definition": definition,
                            "created_at": record.created_at,
                            "namespace": namespace,
                        }
                    ],
                )
        except IntegrityError:
            return None
        return record

    async def get_workflow(
        self, name: str, version: str | None = None, namespace: str = "default"
    ) -> WorkflowRecord | None:
        """A given version, or the newest registered one."""
        query = select(workflows).where(
            workflows.c.name == name, workflows.c.namespace == namespace
        )
        if version is not None and version != "latest":
            query = query.where(workflows.c.version == version)
        query = query.order_by(workflows.c.created_at.desc()).limit(1)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return workflow_record(row) if row else None

    async def list_workflows(
        self, name: str | None = None, namespace: str = "default"
    ) -> list[WorkflowRecord]:
        query = select(workflows).where(workflows.c.namespace == namespace)
        query = query.order_by(workflows.c.name, workflows.c.created_at.desc())
        if name is not None:
            query = query.where(workflows.c.name == name)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [workflow_record(r) for r in rows]

    async def list_workflow_names(
        self, *, limit: int, after: str | None = None, namespace: str = "default"
    ) -> tuple[list[tuple[WorkflowRecord, int]], bool]:
        """Names in order, each with its newest version and how many it has; more to come?"""
        ranked = select(
            workflows,
            func.row_number()
            .over(
                partition_by=workflows.c.name,
                order_by=(workflows.c.created_at.desc(), workflows.c.version.desc()),
            )
            .label("rank"),
            func.count().over(partition_by=workflows.c.name).label("versions"),
        )
        ranked = ranked.where(workflows.c.namespace == namespace)
        if after is not None:
            ranked = ranked.where(workflows.c.name > after)
        sub = ranked.subquery()
        query = select(sub).where(sub.c.rank == 1).order_by(sub.c.name).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        items = [(workflow_record(r), int(r["versions"])) for r in rows[:limit]]
        return items, len(rows) > limit

    async def delete_workflow(
        self, name: str, version: str | None = None, namespace: str = "default"
    ) -> list[str]:
        """Unregister one version, or every version of a name; the versions deleted.

        Executions keep their own copy of the definition, so they are not touched."""
        stmt = delete(workflows).where(workflows.c.name == name, workflows.c.namespace == namespace)
        if version is not None:
            stmt = stmt.where(workflows.c.version == version)
        async with self._write() as conn:
            rows = (await conn.execute(stmt.returning(workflows.c.version))).all()
        return [r.version for r in rows]
