"""Pure immediate runs are written once, when they come to rest.

An immediate run is the request's own work: until the response, nothing of it is accepted.
When none of its steps reaches outside (no `http.request` or other external node, no child
workflow, no human input or event wait), running it again is unobservable, so storing it
before its first step buys nothing a crash could use: the client, with no answer, sends it
again. Such a run is not inserted up front; its first checkpoint (the one that ends it, for
a run shorter than the checkpoint interval; else the first flush, a park or a promotion)
inserts the row with its first events, its steps and its state, in one statement and one
commit instead of two.

A run with an idempotency key or a schedule slot is created first as before: a second
request must find the first one's row while it runs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from app.nodes.registry import NodeRegistry
from app.store.database import is_unavailable
from app.store.records import Checkpoint, EventRecord, NewExecution, numbered_events
from app.store.repository import Repository

log = logging.getLogger(__name__)


def written_at_rest(new: NewExecution, registry: NodeRegistry) -> bool:
    """Whether this new immediate run may be stored at its first checkpoint (see above)."""
    if new.idempotency_key is not None or new.schedule_id is not None:
        return False
    if new.parent is not None or new.flow is not None:
        return False
    return _pure(new.definition.get("nodes"), registry)


def _pure(value: Any, registry: NodeRegistry) -> bool:
    """No node anywhere (foreach templates included) reaches outside (`http.request`, a
    child `workflow`, an external plugin), waits for a human or an event, or is unknown."""
    if isinstance(value, dict):
        kind = value.get("type")
        if isinstance(kind, str):
            node_type = registry.get(kind)
            if node_type is None or node_type.external or node_type.human:
                return False
            if getattr(node_type, "waits", False):  # wait.event: another run may answer it
                return False
        return all(_pure(v, registry) for v in value.values())
    if isinstance(value, list):
        return all(_pure(v, registry) for v in value)
    return True


class DeferredCreation:
    """The recorder's writer for a run not stored yet: its first checkpoint creates it."""

    def __init__(
        self,
        repo: Repository,
        new: NewExecution,
        first: Sequence[tuple[str, dict[str, Any]]],
        created_at: datetime,
    ) -> None:
        self.repo = repo
        self.new = new
        self.first = list(first)
        self.created_at = created_at
        self.created = False

    async def checkpoint(
        self, execution_id: UUID, owner: str, cp: Checkpoint, lease_ms: int
    ) -> tuple[list[EventRecord], str | None]:
        if self.created:
            return await self.repo.checkpoint(execution_id, owner, cp, lease_ms)
        try:
            stored = await self.repo.create_settled(
                self.new, self.first, self.created_at, cp, lease_ms
            )
        except Exception as exc:
            if is_unavailable(exc):
                raise
            # Refused as a whole (a value the database will not take, say): store the run
            # as it was submitted, then the checkpoint on its own, whose error the recorder
            # reports as it would have.
            log.warning("written-once creation refused", extra={"execution_id": str(self.new.id)})
            record, _ = await self.repo.create_execution(self.new, self.first)
            self.created = True
            first = numbered_events(record.id, len(self.first), self.first, record.created_at)
            later, action = await self.repo.checkpoint(execution_id, owner, cp, lease_ms)
            return first + later, action
        self.created = True
        return stored, None
