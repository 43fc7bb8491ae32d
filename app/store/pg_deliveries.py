"""The delivery loop's Postgres statements: a claim, and "delivered, and what comes next",
each one round trip in autocommit (see app/store/deliveries.py for what they mean).

They are written so that no plan can make them scan the backlog, whatever the table's
statistics say (they are wrong most of the time: a table of delivered rows that a burst or a
receiver's outage fills with pending ones). The queue-head test is a correlated subquery,
one probe of `ix_event_deliveries_pending` (a join there is one the planner can turn inside
out); a queue's rows are found in `LATERAL ... OFFSET 0` subqueries, run once per queue with
its keys as index conditions and that index's seq order; the rows are then updated by
primary key, their status rechecked as `status || '' = 'pending'`, a test no partial index
serves. The delivery loop's connections also have bitmap scans off (`app/sinks/parts.py`),
so the heads are read in the due index's order and the scan stops at the `LIMIT`; seq scans
and sorts off, so a queue's rows come from the pending rows' index in its order and rows are
updated by primary key; and no cached generic plan, which a new install makes over an empty
table (seq scans) and keeps until the table is next analysed or vacuumed.
`tests/sinks/test_claim_plans.py` holds the case: 3,000 pending queues behind 30,000
delivered rows, statistics taken before or after the backlog, a claim of 50 queues touched
310,534 buffers before with the former; 1,785 now with either."""

from __future__ import annotations

from sqlalchemy import TextClause, text

# One row per event of each leased delivery (a delivery carries `seq` .. `last_seq`).
_WITH_EVENTS = """
SELECT l.id, l.subscription_id, l.execution_id, l.seq, l.last_seq, l.event_type, l.status,
       l.attempts, l.next_attempt_at, l.last_status, l.last_error, l.created_at,
       l.delivered_at, ev.seq AS ev_seq, ev.type AS ev_type, ev.ev_json,
       ev.created_at AS ev_created_at
FROM leased l LEFT JOIN LATERAL (
  SELECT e.seq, e.type, CAST(e.data AS text) AS ev_json, e.created_at
  FROM execution_events e
  WHERE e.execution_id = l.execution_id AND e.seq BETWEEN l.seq AND coalesce(l.last_seq, l.seq)
  OFFSET 0) ev ON true
ORDER BY l.subscription_id, l.execution_id, l.seq, ev.seq"""

# "Pending", as a test no partial index serves: the rows updated are found by primary key.
_STILL_PENDING = "status || '' = 'pending'"


def _typed(sql: str) -> TextClause:
    """The statement; the event's data comes as JSON text (`ev_json`)."""
    return text(sql)


# Lease the due queues (heads taken with SKIP LOCKED) and read their events.
CLAIM = _typed(
    f"""WITH heads AS (
  SELECT d.subscription_id, d.execution_id FROM event_deliveries d
  WHERE d.status = 'pending' AND d.next_attempt_at <= :now
    AND (d.lease_expires_at IS NULL OR d.lease_expires_at < :now)
    AND d.seq = (
      SELECT p.seq FROM event_deliveries p
      WHERE p.subscription_id = d.subscription_id AND p.execution_id = d.execution_id
        AND p.status = 'pending'
      ORDER BY p.seq LIMIT 1)
  ORDER BY d.next_attempt_at, d.id
  LIMIT :queues
  FOR UPDATE OF d SKIP LOCKED
), leased AS (
  UPDATE event_deliveries x SET lease_owner = :owner, lease_expires_at = :expires
  WHERE x.id = ANY(ARRAY(
    SELECT y.id FROM heads h CROSS JOIN LATERAL (
      SELECT y.id FROM event_deliveries y
      WHERE y.subscription_id = h.subscription_id AND y.execution_id = h.execution_id
        AND y.status = 'pending'
      ORDER BY y.seq OFFSET 0) y))
    AND x.{_STILL_PENDING}
  RETURNING x.*
)"""
    + _WITH_EVENTS
)

# Record the deliveries of many queues (each id with its answer's status) and lease what
# each queue's execution added after its last one (`q`: subscription, execution, seq).
DELIVERED_AND_NEXT = _typed(
    f"""WITH s AS (
  SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS int[])) AS s(id, status)
), q AS (
  SELECT * FROM unnest(CAST(:subs AS uuid[]), CAST(:executions AS uuid[]),
                       CAST(:afters AS bigint[])) AS q(sub, execution, after)
), done AS (
  UPDATE event_deliveries d SET status = 'delivered', delivered_at = :now,
    attempts = d.attempts + 1, last_status = s.status, last_error = NULL,
    lease_owner = NULL, lease_expires_at = NULL
  FROM s WHERE d.id = s.id AND d.{_STILL_PENDING}
), leased AS (
  UPDATE event_deliveries x SET lease_owner = :owner, lease_expires_at = :expires
  WHERE x.id = ANY(ARRAY(
    SELECT y.id FROM q CROSS JOIN LATERAL (
      SELECT y.id FROM event_deliveries y
      WHERE y.subscription_id = q.sub AND y.execution_id = q.execution AND y.seq > q.after
        AND y.status = 'pending'
      ORDER BY y.seq OFFSET 0) y))
    AND x.{_STILL_PENDING} AND x.next_attempt_at <= :now
    AND (x.lease_expires_at IS NULL OR x.lease_expires_at < :now)
  RETURNING x.*
)"""
    + _WITH_EVENTS
)
