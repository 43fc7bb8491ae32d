"""The delivery loop's Postgres statements: a claim, and "delivered, and what comes next",
each one round trip in autocommit (see app/store/deliveries.py for what they mean)."""

from __future__ import annotations

from sqlalchemy import TextClause, text

# One row per event of each leased delivery (a delivery carries `seq` .. `last_seq`).
_WITH_EVENTS = """
SELECT l.id, l.subscription_id, l.execution_id, l.seq, l.last_seq, l.event_type, l.status,
       l.attempts, l.next_attempt_at, l.last_status, l.last_error, l.created_at,
       l.delivered_at, ev.seq AS ev_seq, ev.type AS ev_type, CAST(ev.data AS text) AS ev_json,
       ev.created_at AS ev_created_at
FROM leased l LEFT JOIN execution_events ev
  ON ev.execution_id = l.execution_id
  AND ev.seq BETWEEN l.seq AND coalesce(l.last_seq, l.seq)
ORDER BY l.subscription_id, l.execution_id, l.seq, ev.seq"""


def _typed(sql: str) -> TextClause:
    """The statement; the event's data comes as JSON text (`ev_json`)."""
    return text(sql)


# Lease the due queues (heads taken with SKIP LOCKED) and read their events.
CLAIM = _typed(
    """WITH heads AS (
  SELECT d.subscription_id, d.execution_id FROM event_deliveries d
  WHERE d.status = 'pending' AND d.next_attempt_at <= :now
    AND (d.lease_expires_at IS NULL OR d.lease_expires_at < :now)
    AND NOT EXISTS (
      SELECT 1 FROM event_deliveries p
      WHERE p.subscription_id = d.subscription_id AND p.execution_id = d.execution_id
        AND p.status = 'pending' AND p.seq < d.seq)
  ORDER BY d.next_attempt_at, d.id
  LIMIT :queues
  FOR UPDATE OF d SKIP LOCKED
), leased AS (
  UPDATE event_deliveries x SET lease_owner = :owner, lease_expires_at = :expires
  FROM heads h
  WHERE x.subscription_id = h.subscription_id AND x.execution_id = h.execution_id
    AND x.status = 'pending'
  RETURNING x.*
)"""
    + _WITH_EVENTS
)

# Record the deliveries of many queues (each id with its answer's status) and lease what
# each queue's execution added after its last one (`q`: subscription, execution, seq).
DELIVERED_AND_NEXT = _typed(
    """WITH s AS (
  SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS int[])) AS s(id, status)
), q AS (
  SELECT * FROM unnest(CAST(:subs AS uuid[]), CAST(:executions AS uuid[]),
                       CAST(:afters AS bigint[])) AS q(sub, execution, after)
), done AS (
  UPDATE event_deliveries d SET status = 'delivered', delivered_at = :now,
    attempts = d.attempts + 1, last_status = s.status, last_error = NULL,
    lease_owner = NULL, lease_expires_at = NULL
  FROM s WHERE d.id = s.id AND d.status = 'pending'
), leased AS (
  UPDATE event_deliveries x SET lease_owner = :owner, lease_expires_at = :expires
  FROM q
  WHERE x.subscription_id = q.sub AND x.execution_id = q.execution AND x.seq > q.after
    AND x.status = 'pending' AND x.next_attempt_at <= :now
    AND (x.lease_expires_at IS NULL OR x.lease_expires_at < :now)
  RETURNING x.*
)"""
    + _WITH_EVENTS
)
