"""The Postgres statements of the runs' writes: creations, claims, checkpoints.

Each runs as one statement in autocommit (atomic on its own) and serves many executions at
once (group commit): the rows travel as one JSON array, and data-modifying CTEs move each
execution row together with its events and its steps. SQLite keeps a transaction of
several statements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Float, Integer, TextClause, Uuid, text
from sqlalchemy.sql.schema import Column

from app.engine.state import StepState
from app.engine.status import StepStatus
from app.jsonvalue import dumps
from app.store.outbox import outbox_cte, outbox_rows_cte
from app.store.tables import UTCDateTime, workflow_executions

# Columns of workflow_executions holding JSON, cast from the text parameter.
JSON_COLUMNS = frozenset(
    {"error", "result", "metadata", "input", "definition", "complexity", "tags"}
)
# JSON columns whose Python None is SQL NULL, not JSON null (the claim tests `flow IS NULL`).
NULLABLE_JSON_COLUMNS = frozenset({"flow", "pending_reason"})


# Every statement also names its ids as an array (`:ids`): the planner cannot estimate a
# JSON array's rows, and without it picks a sequential scan of the executions.


def claimable(row: str, now: str) -> str:
    """The claimable rows: pending, due waiting, or running with an expired lease.

    A CASE, not `status = ... OR ...`: the planner cannot serve a CASE from the status
    index, so it finds the rows by their primary key. With the status index it read every
    pending row per claim (1.3 ms with 2,000 pending, its statistics not yet analyzed)."""
    return (
        f"CASE {row}status WHEN 'pending' THEN true"
        f" WHEN 'waiting' THEN {row}wake_at <= {now}"
        f" WHEN 'running' THEN {row}lease_expires_at < {now} ELSE false END"
    )


CLAIMABLE = claimable("w.", "r.now")

EVENT_RECORD = "x(i bigint, type text, data jsonb, at timestamptz)"


def events_insert(select: str) -> str:
    """The one event insert of every batched statement, fed by `select` (execution_id, seq,
    type, data, created_at): an event written with its change goes through here."""
    return f"INSERT INTO execution_events (execution_id, seq, type, data, created_at)\n  {select}"


_CREATE_EVENTS = events_insert(
    "SELECT e.id, x.i, x.type, x.data, x.at\n"
    f"  FROM e JOIN r ON r.id = e.id, jsonb_to_recordset(r.v -> 'events') AS {EVENT_RECORD}"
)
_CLAIM_EVENTS = events_insert("SELECT e.id, e.last_seq, e.ev_type, e.ev_data, e.ev_at FROM e")
_CHECKPOINT_EVENTS = events_insert(
    "SELECT e.id, e.last_seq - e.n_events + x.i, x.type, x.data, x.at\n"
    f"  FROM e, jsonb_to_recordset(e.events) AS {EVENT_RECORD}"
)


def pg_type(col: Column[Any]) -> str:
    """The Postgres type a JSON field is read as, for a column of workflow_executions."""
    if col.name in JSON_COLUMNS:
        return "jsonb"
    if col.name in NULLABLE_JSON_COLUMNS:
        return "jsonb-or-null"
    kind = col.type
    if isinstance(kind, Uuid):
        return "uuid"
    if isinstance(kind, UTCDateTime):
        return "timestamptz"
    if isinstance(kind, BigInteger):
        return "bigint"
    if isinstance(kind, Integer):
        return "int"
    if isinstance(kind, Float):
        return "float8"
    return "text"


def json_value(value: Any) -> Any:
    """A column value as a JSON field (times as ISO strings, ids as text)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def event_rows(
    events: Sequence[tuple[str, Mapping[str, Any]]], times: Sequence[datetime], now: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "i": i,
            "type": kind,
            "data": data,
            "at": (times[i - 1] if i <= len(times) else now).isoformat(),
        }
        for i, (kind, data) in enumerate(events, start=1)
    ]


def step_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Step rows (step_row) with their times as ISO strings."""
    return [{k: json_value(v) for k, v in row.items()} for row in rows]


def rows_param(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as the one JSON parameter (values already JSON: see json_value)."""
    return dumps(rows)


def steps_insert(source: str, steps: str) -> str:
    """The step insert of a batched statement: each row of `source` (with its `id`) and
    the steps its `steps` JSON array holds, stamped with the statement's `:now`."""
    return f"""INSERT INTO execution_steps (execution_id, step_key, node_id, item_index, status,
                               attempt, started_at, completed_at, output, error, state,
                               updated_at)
  SELECT e.id, s.step_key, s.node_id, s.item_index, s.status, s.attempt,
         s.started_at, s.completed_at, s.output, s.error, s.state, CAST(:now AS timestamptz)
  FROM {source}, jsonb_to_recordset({steps}) AS s(
    step_key text, node_id text, item_index int, status text, attempt int,
    started_at timestamptz, completed_at timestamptz, output jsonb, error jsonb, state jsonb)"""


_SETTLED_STEPS = steps_insert("e JOIN r ON r.id = e.id", "r.v -> 'steps'")


@lru_cache(maxsize=16)
def create_many_sql(
    columns: tuple[str, ...], outbox: bool = False, steps: bool = False
) -> TextClause:
    """Insert many executions, their first events and those events' outbox deliveries; a
    known idempotency key or schedule slot inserts nothing (the statement returns the ids
    it did insert). Each row is one JSON object, read column by column (a JSON null stays a
    JSON value in a JSON column); its `outbox` holds its events' candidate deliveries, and
    with `steps` its `steps` the execution's steps (a run written once, at rest: `:now`)."""
    step_cte = f", st AS (\n  {_SETTLED_STEPS}\n)" if steps else ""
    types = {c.name: pg_type(c) for c in workflow_executions.c}
    names = ", ".join(columns)
    reads = ", ".join(_read(c, types[c]) for c in columns)
    return text(
        f"""WITH r AS (
  SELECT j.v, CAST(j.v ->> 'id' AS uuid) AS id
  FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS j(v)
), e AS (
  INSERT INTO workflow_executions ({names}) SELECT {reads} FROM r
  ON CONFLICT DO NOTHING
  RETURNING id, namespace, workflow_name
), ev AS (
  {_CREATE_EVENTS}
){_outbox(outbox, "e JOIN r ON r.id = e.id", "r.v -> 'outbox'", "{i}")}{step_cte}
SELECT id FROM e"""
    )


@lru_cache(maxsize=2)
def claim_many_sql(columns: tuple[str, ...], outbox: bool = False) -> TextClause:
    """Take many runnable executions without flow control (those go through the gated
    claim, app/store/flow.py), locked in id order so concurrent claimers cannot deadlock;
    write each one's event (and its deliveries) and read each one's steps."""
    returned = ", ".join(f"e.{c}" for c in columns)
    return text(
        f"""WITH r AS (
  SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb))
    AS r(id uuid, owner text, expires timestamptz, now timestamptz, type text, data jsonb,
         outbox jsonb)
), c AS (
  SELECT w.id FROM workflow_executions w JOIN r ON r.id = w.id
  WHERE w.id = ANY(CAST(:ids AS uuid[])) AND {CLAIMABLE} AND w.flow IS NULL
  ORDER BY w.id FOR UPDATE OF w
), e AS (
  UPDATE workflow_executions w SET
    status = 'running', lease_owner = r.owner, lease_expires_at = r.expires,
    started_at = coalesce(w.started_at, r.now), updated_at = r.now, wake_at = NULL,
    last_seq = w.last_seq + 1,
    recoveries = CASE WHEN w.status = 'running' THEN w.recoveries + 1 ELSE w.recoveries END
  FROM r WHERE w.id = r.id AND w.id = ANY(CAST(:ids AS uuid[]))
    AND w.id IN (SELECT id FROM c) AND {CLAIMABLE}
  RETURNING w.*, r.type AS ev_type, r.data AS ev_data, r.now AS ev_at, r.outbox AS ev_outbox
), ev AS (
  {_CLAIM_EVENTS}
){_outbox(outbox, "e", "e.ev_outbox", "e.last_seq")}
SELECT {returned}, (
  SELECT coalesce(jsonb_agg(to_jsonb(s)), '[]'::jsonb) FROM execution_steps s
  WHERE s.execution_id = e.id
) AS steps_json FROM e"""
    )


def _outbox(wanted: bool, source: str, candidates: str, seq: str) -> str:
    """The outbox CTE of a batched statement (empty when no row has candidates)."""
    return "," + outbox_rows_cte(source, candidates, seq) if wanted else ""


@lru_cache(maxsize=4)
def claim_one_sql(columns: tuple[str, ...], gated: bool, outbox: bool) -> TextClause:
    """Take one runnable execution inside a caller's transaction: the flow-control gate's
    claim (`gated`: any row, clearing its pending reason) after its checks."""
    returned = ", ".join(f"e.{c}" for c in columns)
    gate = ", pending_reason = NULL" if gated else ""
    fast = "" if gated else "\n    AND flow IS NULL"
    deliveries = "," + outbox_cte("e.id", "e.last_seq") if outbox else ""
    return text(
        f"""WITH e AS (
  UPDATE workflow_executions SET
    status = 'running', lease_owner = :owner, lease_expires_at = :expires,
    started_at = coalesce(started_at, :now), updated_at = :now, wake_at = NULL,
    last_seq = last_seq + 1,
    recoveries = CASE WHEN status = 'running' THEN recoveries + 1 ELSE recoveries END{gate}
  WHERE id = CAST(:id AS uuid)
    AND {claimable("", ":now")}{fast}
  RETURNING *
), ev AS (
  {events_insert("SELECT e.id, e.last_seq, :type, CAST(:data AS jsonb), :now FROM e")}
){deliveries}
SELECT {returned}, (
  SELECT coalesce(jsonb_agg(to_jsonb(s)), '[]'::jsonb) FROM execution_steps s
  WHERE s.execution_id = e.id
) AS steps_json FROM e"""
    )


def _read(column: str, kind: str) -> str:
    if kind == "jsonb":
        return f"r.v -> '{column}'"
    if kind == "jsonb-or-null":
        return f"nullif(r.v -> '{column}', 'null'::jsonb)"
    return f"CAST(r.v ->> '{column}' AS {kind})"


@lru_cache(maxsize=64)
def checkpoint_many_sql(columns: tuple[str, ...], outbox: bool = False) -> TextClause:
    """Many lease-fenced checkpoints: each row sets the columns its `v` holds (others keep
    their value), then its events and step upserts follow. Rows are locked in id order, as
    the claim locks them, so two batches sharing executions cannot deadlock."""
    types = {c.name: pg_type(c) for c in workflow_executions.c}
    sets = ", ".join(
        [
            "last_seq = w.last_seq + r.n_events",
            *(
                f"{c} = CASE WHEN r.v ? '{c}' THEN {_read(c, types[c])} ELSE w.{c} END"
                for c in columns
            ),
        ]
    )
    return text(
        f"""WITH r AS (
  SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb))
    AS r(id uuid, owner text, n_events bigint, v jsonb, events jsonb, steps jsonb,
         outbox jsonb)
), c AS (
  SELECT w.id FROM workflow_executions w JOIN r ON r.id = w.id
  WHERE w.id = ANY(CAST(:ids AS uuid[])) ORDER BY w.id FOR UPDATE OF w
), e AS (
  UPDATE workflow_executions w SET {sets}
  FROM r WHERE w.id = r.id AND w.id = ANY(CAST(:ids AS uuid[])) AND w.id IN (SELECT id FROM c)
    AND w.lease_owner = r.owner AND w.status = 'running'
  RETURNING w.id, w.last_seq, w.control_action, w.namespace, w.workflow_name, r.n_events,
            r.events, r.steps, r.outbox
), ev AS (
  {_CHECKPOINT_EVENTS}
){_outbox(outbox, "e", "e.outbox", "e.last_seq - e.n_events + {i}")}, st AS (
  {steps_insert("e", "e.steps")}
  ON CONFLICT (execution_id, step_key) DO UPDATE SET
    status = EXCLUDED.status, attempt = EXCLUDED.attempt, started_at = EXCLUDED.started_at,
    completed_at = EXCLUDED.completed_at, output = EXCLUDED.output, error = EXCLUDED.error,
    state = EXCLUDED.state, updated_at = EXCLUDED.updated_at
)
SELECT id, last_seq, control_action FROM e"""
    )


def step_row(step: StepState) -> dict[str, Any]:
    """A step as the columns of `execution_steps` (without the execution id and times)."""
    return {
        "step_key": step.key,
        "node_id": step.node_id,
        "item_index": step.item_index,
        "status": str(step.status),
        "attempt": step.attempt,
        "started_at": step.started_at,
        "completed_at": step.completed_at,
        "output": step.output,
        "error": step.error,
        "state": step.state or None,
    }


def step_from_json(row: Mapping[str, Any]) -> StepState:
    """A step row as `to_jsonb` wrote it (timestamps as ISO strings)."""
    return StepState(
        key=row["step_key"],
        node_id=row["node_id"],
        item_index=row["item_index"],
        status=StepStatus(row["status"]),
        attempt=row["attempt"],
        started_at=_timestamp(row["started_at"]),
        completed_at=_timestamp(row["completed_at"]),
        output=row["output"],
        error=row["error"],
        state=row["state"] or {},
    )


def _timestamp(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None
