"""Single-statement writes for Postgres: a checkpoint or a creation in one round trip.

Each runs as one statement in autocommit (atomic on its own): the execution row, its
events and its steps move together through data-modifying CTEs, and the rows of events and
steps travel as one JSON array each. SQLite keeps the multi-statement path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import TextClause, text

from app.engine.state import StepState
from app.engine.status import StepStatus
from app.jsonvalue import dumps
from app.store.outbox import outbox_cte

# Columns of workflow_executions holding JSON, cast from the text parameter.
JSON_COLUMNS = frozenset(
    {
        "error",
        "result",
        "metadata",
        "input",
        "definition",
        "complexity",
        "tags",
        "flow",
        "pending_reason",
    }
)
# Of those, the ones whose None is SQL NULL rather than JSON null (tables.NullableJSON).
_SQL_NULL = frozenset({"flow", "pending_reason"})


def _json_param(column: str, value: Any) -> Any:
    if column not in JSON_COLUMNS or (value is None and column in _SQL_NULL):
        return value
    return dumps(value)


def events_json(
    events: Sequence[tuple[str, Mapping[str, Any]]], times: Sequence[datetime], now: datetime
) -> str:
    rows = []
    for i, (kind, data) in enumerate(events, start=1):
        at = times[i - 1] if i <= len(times) else now
        rows.append({"i": i, "type": kind, "data": data, "at": at.isoformat()})
    return dumps(rows)


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


def steps_json(steps: Sequence[StepState]) -> str:
    rows = [step_row(s) for s in steps]
    for row in rows:
        row["started_at"] = _iso(row["started_at"])
        row["completed_at"] = _iso(row["completed_at"])
    return dumps(rows)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


_EVENTS_CTE = """
ev AS (
  INSERT INTO execution_events (execution_id, seq, type, data, created_at)
  SELECT CAST(:id AS uuid), e.last_seq - :n_events + x.i, x.type, x.data, x.at
  FROM e, jsonb_to_recordset(CAST(:events AS jsonb))
       AS x(i bigint, type text, data jsonb, at timestamptz)
)"""

_STEPS_CTE = """
st AS (
  INSERT INTO execution_steps (execution_id, step_key, node_id, item_index, status, attempt,
                               started_at, completed_at, output, error, state, updated_at)
  SELECT CAST(:id AS uuid), s.step_key, s.node_id, s.item_index, s.status, s.attempt,
         s.started_at, s.completed_at, s.output, s.error, s.state, CAST(:now AS timestamptz)
  FROM e, jsonb_to_recordset(CAST(:steps AS jsonb)) AS s(
    step_key text, node_id text, item_index int, status text, attempt int,
    started_at timestamptz, completed_at timestamptz, output jsonb, error jsonb, state jsonb)
  ON CONFLICT (execution_id, step_key) DO UPDATE SET
    status = EXCLUDED.status, attempt = EXCLUDED.attempt, started_at = EXCLUDED.started_at,
    completed_at = EXCLUDED.completed_at, output = EXCLUDED.output, error = EXCLUDED.error,
    state = EXCLUDED.state, updated_at = EXCLUDED.updated_at
)"""


def _assign(column: str) -> str:
    if column in JSON_COLUMNS:
        return f"{column} = CAST(:v_{column} AS jsonb)"
    return f"{column} = :v_{column}"


# The outbox deliveries of a statement's events (only when it has candidates: `:outbox`).
_OUTBOX_CTE = "," + outbox_cte("CAST(:id AS uuid)", "e.last_seq - :n_events + d.i")


@lru_cache(maxsize=64)
def checkpoint_sql(columns: tuple[str, ...], outbox: bool = False) -> TextClause:
    """UPDATE fenced by the lease, then the events, their deliveries and the steps, in one
    statement."""
    sets = ", ".join(["last_seq = last_seq + :n_events", *(_assign(c) for c in columns)])
    return text(
        f"""WITH e AS (
  UPDATE workflow_executions SET {sets}
  WHERE id = CAST(:id AS uuid) AND lease_owner = :owner AND status = 'running'
  RETURNING last_seq, control_action, namespace, workflow_name
),{_EVENTS_CTE}{_OUTBOX_CTE if outbox else ""},{_STEPS_CTE}
SELECT last_seq, control_action FROM e"""
    )


def checkpoint_params(
    execution_id: UUID,
    owner: str,
    values: Mapping[str, Any],
    events: str,
    n_events: int,
    steps: str,
    now: datetime,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "id": execution_id,
        "owner": owner,
        "n_events": n_events,
        "events": events,
        "steps": steps,
        "now": now,
    }
    for column, value in values.items():
        params[f"v_{column}"] = _json_param(column, value)
    return params


@lru_cache(maxsize=8)
def create_sql(columns: tuple[str, ...], outbox: bool = False) -> TextClause:
    """INSERT the execution, its first events and their deliveries in one statement."""
    names = ", ".join(columns)
    values = ", ".join(
        f"CAST(:v_{c} AS jsonb)" if c in JSON_COLUMNS else f":v_{c}" for c in columns
    )
    return text(
        f"""WITH e AS (
  INSERT INTO workflow_executions ({names}) VALUES ({values})
  RETURNING last_seq, namespace, workflow_name
),{_EVENTS_CTE}{_OUTBOX_CTE if outbox else ""}
SELECT last_seq FROM e"""
    )


def create_params(values: Mapping[str, Any], events: str, n_events: int) -> dict[str, Any]:
    params: dict[str, Any] = {"id": values["id"], "events": events, "n_events": n_events}
    for column, value in values.items():
        params[f"v_{column}"] = _json_param(column, value)
    return params


@lru_cache(maxsize=8)
def claim_sql(columns: tuple[str, ...], gated: bool = False, outbox: bool = False) -> TextClause:
    """Take a runnable execution, write its `execution.started` event (and its deliveries)
    and read its steps.

    The fast path takes only rows without flow control; `gated` (app/store/flow.py, after
    its checks) takes any, and clears the row's pending reason."""
    deliveries = "," + outbox_cte("e.id", "e.last_seq") if outbox else ""
    returned = ", ".join(f"e.{c}" for c in columns)
    gate = ", pending_reason = NULL" if gated else ""
    fast = "" if gated else "\n    AND flow IS NULL"
    return text(
        f"""WITH e AS (
  UPDATE workflow_executions SET
    status = 'running', lease_owner = :owner, lease_expires_at = :expires,
    started_at = coalesce(started_at, :now), updated_at = :now, wake_at = NULL,
    last_seq = last_seq + 1,
    recoveries = CASE WHEN status = 'running' THEN recoveries + 1 ELSE recoveries END{gate}
  WHERE id = CAST(:id AS uuid)
    AND (status = 'pending' OR (status = 'waiting' AND wake_at <= :now)
         OR (status = 'running' AND lease_expires_at < :now)){fast}
  RETURNING *
), ev AS (
  INSERT INTO execution_events (execution_id, seq, type, data, created_at)
  SELECT e.id, e.last_seq, :type, CAST(:data AS jsonb), :now FROM e
){deliveries}
SELECT {returned}, (
  SELECT coalesce(jsonb_agg(to_jsonb(s)), '[]'::jsonb) FROM execution_steps s
  WHERE s.execution_id = e.id
) AS steps_json FROM e"""
    )


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
