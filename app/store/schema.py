"""Is the database at the migration this code needs? Checked at startup, by /readyz, and
before requests touch the tables, so an unmigrated database is a clear 503, never a 500."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import SchemaNotMigrated
from app.store.database import current_revision, head_revision, missing_database

log = logging.getLogger(__name__)

# While the schema is behind, look again at most this often (a `turnout migrate` run
# meanwhile is noticed without a restart).
RECHECK_S = 1.0


class StartupError(Exception):
    """The process cannot serve at all (e.g. its database does not exist): say so and exit."""


@dataclass(slots=True)
class SchemaStatus:
    current: str | None
    head: str | None

    @property
    def ok(self) -> bool:
        return self.head is None or self.current == self.head

    def describe(self) -> str:
        if self.ok:
            return "ok"
        return (
            f"behind: the database is at {self.current or 'no migration'}, this version needs "
            f"{self.head}; run `turnout migrate`"
        )


class SchemaCheck:
    """Caches the answer once the schema is at head (it never goes back while we run)."""

    def __init__(self, engine: AsyncEngine, database_url: str) -> None:
        self.engine = engine
        self.database_url = database_url
        self.head: str | None = None
        self.status: SchemaStatus | None = None
        self._checked = 0.0
        self._lock = asyncio.Lock()

    async def startup(self) -> None:
        """Check once at startup. A missing database is fatal; an unreachable one is not
        (the process starts degraded and checks again later)."""
        try:
            self.head = head_revision()
        except Exception as exc:  # no migrations shipped: nothing to compare with
            log.warning("cannot tell the schema's head revision: %s", exc)
        try:
            status = await self.refresh()
        except Exception as exc:
            if missing_database(exc):
                url = make_url(self.database_url)
                raise StartupError(
                    f"database {url.database!r} does not exist on {url.host}:{url.port or 5432}"
                    f": create it (e.g. `createdb {url.database}`), then run `turnout migrate`"
                ) from None
            log.warning("database unreachable at startup; schema checked later: %s", exc)
            return
        if not status.ok:
            log.error("database schema is %s", status.describe())

    async def refresh(self) -> SchemaStatus:
        async with self._lock:
            self._checked = time.monotonic()
            self.status = SchemaStatus(await current_revision(self.engine), self.head)
            return self.status

    def mark_current(self) -> None:
        """The schema was just upgraded by this process."""
        self.status = SchemaStatus(self.head, self.head)

    async def require(self) -> None:
        """Raise SchemaNotMigrated unless the schema is at head."""
        status = self.status
        if status is not None and status.ok:
            return
        if status is None or time.monotonic() - self._checked >= RECHECK_S:
            status = await self.refresh()
        if not status.ok:
            raise SchemaNotMigrated(
                f"the database schema is not migrated to this version of Turnout (it is at "
                f"{status.current or 'no migration'}, head is {status.head}): "
                "run `turnout migrate`"
            )
