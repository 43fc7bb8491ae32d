"""Runs written once: an execution stored together with its first checkpoint.

A pure immediate run (no step that reaches outside, no child workflow, no idempotency key or
schedule slot) is not stored before it runs: its first checkpoint, usually the one that
ends it, inserts the row with its first events, its steps and the checkpoint's state in one
statement (app/execution/deferred.py says when)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import insert

from app.engine.state import utcnow
from app.store import pg_batch
from app.store.base import StoreBase, checkpoint_values
from app.store.batching import GroupCommit
from app.store.creations import GROUP_MAX_ROWS, creation_values
from app.store.records import Checkpoint, EventRecord, NewExecution, numbered_events
from app.store.tables import workflow_executions


@dataclass(frozen=True, slots=True)
class SettledCreation:
    """One execution's row, every event it has so far (with their times) and its steps."""

    new: NewExecution
    row: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    times: list[datetime]
    cp: Checkpoint
    now: datetime

    def stored(self) -> list[EventRecord]:
        return numbered_events(self.new.id, len(self.events), self.events, self.now, self.times)


class SettledCreationStore(StoreBase):
    @cached_property
    def _settled(self) -> GroupCommit[SettledCreation, list[EventRecord]]:
        return GroupCommit(self._write_settled, max_rows=GROUP_MAX_ROWS)

    async def create_settled(
        self,
        new: NewExecution,
        first: Sequence[tuple[str, dict[str, Any]]],
        created_at: datetime,
        cp: Checkpoint,
        lease_ms: int,
    ) -> list[EventRecord]:
        """Insert an execution created at `created_at` with its `first` events and its first
        checkpoint `cp` (as RunStore.checkpoint would write it), sharing the commit with
        others; returns every event stored, numbered from 1."""
        now = utcnow()
        events = [*first, *cp.events]
        row = creation_values(new, len(events), created_at)
        row.update(checkpoint_values(cp, lease_ms, now))
        times = [created_at] * len(first) + list(cp.event_times)
        return await self._settled.submit(SettledCreation(new, row, events, times, cp, now))

    async def _write_settled(
        self, items: Sequence[SettledCreation]
    ) -> list[list[EventRecord] | Exception]:
        if self.dialect != "postgresql":
            written: list[list[EventRecord] | Exception] = []
            async with self._write() as conn:
                for item in items:
                    await conn.execute(insert(workflow_executions).values(item.row))
                    written.append(list(await self._insert_events(conn, item.stored())))
                    if item.cp.steps:
                        await self._upsert_steps(conn, item.new.id, item.cp.steps, item.now)
            return written
        # One statement per set of columns (a completed run sets `result`, a failed one
        # `error`...): in practice one.
        by_columns: dict[tuple[str, ...], list[SettledCreation]] = defaultdict(list)
        for item in items:
            by_columns[tuple(item.row)].append(item)
        inserted: set[Any] = set()
        for columns, group in by_columns.items():
            inserted |= await self._insert_settled_pg(columns, group)
        return [
            item.stored()
            if item.new.id in inserted
            else RuntimeError(f"execution {item.new.id} was not inserted")
            for item in items
        ]

    async def _insert_settled_pg(
        self, columns: tuple[str, ...], items: Sequence[SettledCreation]
    ) -> set[Any]:
        rows = [
            {
                **{c: pg_batch.json_value(v) for c, v in item.row.items()},
                "events": pg_batch.event_rows(item.events, item.times, item.now),
                "steps": pg_batch.step_rows([pg_batch.step_row(s) for s in item.cp.steps]),
                "outbox": self.outbox.candidates([kind for kind, _ in item.events]) or None,
            }
            for item in items
        ]
        outbox = any(row["outbox"] for row in rows)
        sql = pg_batch.create_many_sql(columns, outbox, steps=True)
        params = {"rows": pg_batch.rows_param(rows), "now": max(item.now for item in items)}
        result = await self._batched(sql, params)
        return {row.id for row in result}
