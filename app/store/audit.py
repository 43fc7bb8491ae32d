"""The audit log: append-only rows of who did what to which target, when and from where."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select

from app.store.base import StoreBase
from app.store.tables import audit_log


@dataclass
class AuditEntry:
    actor: str
    namespace: str
    action: str
    target: str
    source: str | None = None
    label: str | None = None
    details: dict[str, Any] | None = None


@dataclass
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    namespace: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _resource(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": row["at"].isoformat(),
        "actor": row["actor"],
        "label": row["label"],
        "namespace": row["namespace"],
        "action": row["action"],
        "target": row["target"],
        "source": row["source"],
        "details": row["details"] or {},
    }


class AuditStore(StoreBase):
    """Inserts and reads only: there is no update or delete of an audit row."""

    async def append(self, entry: AuditEntry) -> None:
        async with self._write() as conn:
            await conn.execute(
                insert(audit_log).values(
                    at=datetime.now(UTC),
                    actor=entry.actor,
                    label=entry.label,
                    namespace=entry.namespace,
                    action=entry.action,
                    target=entry.target[:300],
                    source=entry.source,
                    details=entry.details,
                )
            )

    async def list(
        self, flt: AuditFilter, *, limit: int, before_id: int | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first; the cursor is the last id of the page."""
        sql = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit + 1)
        for column, value in (
            (audit_log.c.actor, flt.actor),
            (audit_log.c.action, flt.action),
            (audit_log.c.target, flt.target),
            (audit_log.c.namespace, flt.namespace),
        ):
            if value is not None:
                sql = sql.where(column == value)
        if flt.since is not None:
            sql = sql.where(audit_log.c.at >= flt.since)
        if flt.until is not None:
            sql = sql.where(audit_log.c.at < flt.until)
        if before_id is not None:
            sql = sql.where(audit_log.c.id < before_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sql)).mappings().all()
        page = [_resource(r) for r in rows[:limit]]
        return page, (page[-1]["id"] if len(rows) > limit else None)
