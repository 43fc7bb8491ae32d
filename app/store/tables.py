"""Table definitions (SQLAlchemy Core), shared by the repository and alembic."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)

from app.engine.status import Status
from app.store.columns import JSONType, NullableJSON, UTCDateTime, metadata

workflow_executions = Table(
    "workflow_executions",
    metadata,
    # The seed's columns.
    Column("id", Uuid, primary_key=True),
    Column("workflow_id", String(200), nullable=True),
    Column("status", String(20), nullable=False),
    Column("execution_mode", String(20), nullable=False),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("completed_at", UTCDateTime(), nullable=True),
    Column("error", JSONType, nullable=True),
    Column("result", JSONType, nullable=True),
    Column("metadata", JSONType, nullable=False, server_default="{}"),
    # What the features need.
    Column("workflow_name", String(200), nullable=False),
    Column("workflow_version", String(100), nullable=True),
    Column("requested_mode", String(20), nullable=False, server_default="auto"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("input", JSONType, nullable=False),
    Column("definition", JSONType, nullable=False),
    Column("complexity", JSONType, nullable=True),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("tags", JSONType, nullable=False, server_default="[]"),
    Column("idempotency_key", String(255), nullable=True, unique=True),
    Column("request_hash", String(64), nullable=True),
    Column("attempt", Integer, nullable=False, server_default="1"),
    # Takeovers of a running attempt whose lease expired; reset when a run comes to rest.
    Column("recoveries", Integer, nullable=False, server_default="0"),
    Column("timeout_ms", BigInteger, nullable=True),
    # The W3C traceparent of the request that created the run (the trace a worker continues).
    Column("trace_context", String(200), nullable=True),
    # What the steps cost, summed when the run comes to rest (for the analytics).
    Column("step_retries", Integer, nullable=False, server_default="0"),
    Column("cpu_ms", Float, nullable=True),
    Column("bytes_sent", BigInteger, nullable=True),
    Column("bytes_received", BigInteger, nullable=True),
    Column("elapsed_ms", BigInteger, nullable=False, server_default="0"),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_expires_at", UTCDateTime(), nullable=True),
    Column("control_action", String(20), nullable=True),
    Column("wake_at", UTCDateTime(), nullable=True),
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
    Column("progress_done", Integer, nullable=False, server_default="0"),
    Column("progress_total", Integer, nullable=False, server_default="0"),
    Column("namespace", String(100), nullable=False, server_default="default"),
    # The schedule fire that started it: one execution per (schedule, slot), whoever fires.
    Column("schedule_id", Uuid, nullable=True),
    Column("schedule_slot", UTCDateTime(), nullable=True),
    UniqueConstraint("schedule_id", "schedule_slot", name="uq_workflow_executions_schedule_slot"),
    # Composition (child workflows): the parent step that started this run, and its depth.
    Column("parent_execution_id", Uuid, nullable=True),
    Column("parent_step_key", String(300), nullable=True),
    Column("parent_attempt", Integer, nullable=True),
    Column("child_depth", Integer, nullable=False, server_default="0"),
    # Flow control (app/store/flow.py): the gate's spec with its keys evaluated at creation
    # (null: the claim's fast path), the concurrency key's value, why it waits pending.
    Column("flow", NullableJSON, nullable=True),
    Column("concurrency_key", String(200), nullable=True),
    Column("pending_reason", NullableJSON, nullable=True),
    CheckConstraint(
        f"status IN ({','.join(repr(str(s)) for s in Status)})",
        name="ck_workflow_executions_status",
    ),
    CheckConstraint("execution_mode IN ('immediate','queued')", name="ck_workflow_executions_mode"),
    Index("ix_workflow_executions_created", "created_at", "id"),
    Index("ix_workflow_executions_status", "status", "lease_expires_at"),
    Index("ix_workflow_executions_workflow", "workflow_name", "created_at"),
    # The analytics' rollup folds runs by when they ended (app/store/rollups.py).
    Index("ix_workflow_executions_completed", "completed_at"),
    Index("ix_workflow_executions_namespace", "namespace", "created_at"),
    Index("ix_workflow_executions_parent", "parent_execution_id"),
    Index("ix_workflow_executions_concurrency", "concurrency_key", "status"),
)

execution_steps = Table(
    "execution_steps",
    metadata,
    Column("execution_id", Uuid, nullable=False),
    Column("step_key", String(300), nullable=False),
    Column("node_id", String(200), nullable=False),
    Column("item_index", Integer, nullable=True),
    Column("status", String(20), nullable=False),
    Column("attempt", Integer, nullable=False, server_default="0"),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("completed_at", UTCDateTime(), nullable=True),
    Column("output", JSONType, nullable=True),
    Column("error", JSONType, nullable=True),
    Column("state", JSONType, nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("execution_id", "step_key", name="pk_execution_steps"),
)

execution_events = Table(
    "execution_events",
    metadata,
    Column("execution_id", Uuid, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(50), nullable=False),
    Column("data", JSONType, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("execution_id", "seq", name="pk_execution_events"),
)

workflows = Table(
    "workflows",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("version", String(100), nullable=False),
    Column("definition", JSONType, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("namespace", String(100), nullable=False, server_default="default"),
    UniqueConstraint("namespace", "name", "version", name="uq_workflows_namespace_name_version"),
    Index("ix_workflows_name_created", "name", "created_at"),
)


# The statuses as the rollup columns name them (n_pending, ...), derived from the one list.
EXECUTION_STATUSES = tuple(str(s) for s in Status)

# Hourly analytics rollups of the executions that ended (by creation hour), folded by the
# reconciler up to a watermark; the duration histogram's bucket k is described in
# app/store/rollups.py.
HISTOGRAM_BUCKETS = 128
_ROLLUP_KEY = ("workflow_name", "workflow_version", "bucket_start")

execution_rollups = Table(
    "execution_rollups",
    metadata,
    Column("workflow_name", String(200), nullable=False),
    Column("workflow_version", String(100), nullable=False),  # '' for none
    Column("bucket_start", UTCDateTime(), nullable=False),
    *(Column(f"n_{s}", Integer, nullable=False) for s in Status),
    *(
        Column(name, Float, nullable=False)
        for name in ("dur_n", "wait_n", "wait_sum", "retries_sum", "cpu_n", "cpu_sum")
    ),
    *(Column(name, Float, nullable=False) for name in ("sent_n", "sent_sum", "recv_n", "recv_sum")),
    Column("dur_max", Float, nullable=True),
    *(Column(f"h{k}", Integer, nullable=False) for k in range(HISTOGRAM_BUCKETS)),
    PrimaryKeyConstraint(*_ROLLUP_KEY, name="pk_execution_rollups"),
)

execution_rollup_errors = Table(
    "execution_rollup_errors",
    metadata,
    Column("workflow_name", String(200), nullable=False),
    Column("workflow_version", String(100), nullable=False),
    Column("bucket_start", UTCDateTime(), nullable=False),
    Column("code", String(200), nullable=False),
    Column("n", Integer, nullable=False),
    PrimaryKeyConstraint(*_ROLLUP_KEY, "code", name="pk_execution_rollup_errors"),
)

# One row: every run that ended at or before `folded_until` is in the rollups.
analytics_watermark = Table(
    "analytics_watermark",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("folded_until", UTCDateTime(), nullable=False),
)

# Security (issue 15): keys and sessions (hashes only), the audit log, encrypted secrets.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("namespace", String(100), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_hint", String(12), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_used_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
)

api_sessions = Table(
    "api_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("key_id", Integer, nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index("ix_api_sessions_key", "key_id"),
)

AUDIT_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER keys only

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", AUDIT_ID, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("label", String(200), nullable=True),
    Column("namespace", String(100), nullable=False),
    Column("action", String(50), nullable=False),
    Column("target", String(300), nullable=False),
    Column("source", String(100), nullable=True),
    Column("details", JSONType, nullable=True),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_target", "target"),
)

secrets = Table(
    "secrets",
    metadata,
    Column("namespace", String(100), nullable=False),
    Column("name", String(100), nullable=False),
    Column("value", Text, nullable=False),  # Fernet token
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("namespace", "name", name="pk_secrets"),
)

# Composition (issue 16): events sent with `POST /events`, kept for waiters and triggers.
EVENT_SEQ = BigInteger().with_variant(Integer, "sqlite")

events = Table(
    "events",
    metadata,
    Column("seq", EVENT_SEQ, primary_key=True, autoincrement=True),
    Column("namespace", String(100), nullable=False),
    Column("event_id", String(200), nullable=False),  # the sender's `id`, or one made up
    Column("name", String(200), nullable=False),
    Column("data", JSONType, nullable=True),
    Column("received_at", UTCDateTime(), nullable=False),
    UniqueConstraint("namespace", "event_id", name="uq_events_namespace_event_id"),
    Index("ix_events_name_received", "namespace", "name", "received_at"),
)

# The `wait.event` steps parked on an event name: whom a new event wakes.
event_waits = Table(
    "event_waits",
    metadata,
    Column("execution_id", Uuid, nullable=False),
    Column("step_key", String(300), nullable=False),
    Column("namespace", String(100), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("execution_id", "step_key", name="pk_event_waits"),
    Index("ix_event_waits_name", "namespace", "name"),
)

# Event sinks (issue 19): subscriptions, and the outbox of deliveries written with each event.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("namespace", String(100), nullable=False),
    Column("sink", String(20), nullable=False),
    Column("url", Text, nullable=True),
    Column("stream", String(200), nullable=True),
    Column("events", JSON, nullable=False),
    Column("workflow", String(200), nullable=True),
    Column("description", String(500), nullable=True),
    Column("secret", Text, nullable=True),  # a Fernet token when TURNOUT_SECRET_KEY is set
    Column("status", String(20), nullable=False),
    # Events per webhook POST (a JSON array when > 1) or per Redis pipeline.
    Column("batch_size", Integer, nullable=False, server_default="1"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_subscriptions_namespace", "namespace", "created_at"),
)

event_deliveries = Table(
    "event_deliveries",
    metadata,
    Column("id", AUDIT_ID, primary_key=True, autoincrement=True),
    Column("subscription_id", Uuid, nullable=False),
    Column("execution_id", Uuid, nullable=False),
    Column("seq", BigInteger, nullable=False),  # a commit's events seq .. last_seq (0013):
    Column("last_seq", BigInteger, nullable=True),  # NULL one event; event_type the first's
    Column("event_type", String(50), nullable=False),
    Column("status", String(20), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_expires_at", UTCDateTime(), nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime(), nullable=True),
    UniqueConstraint("subscription_id", "execution_id", "seq", name="uq_event_deliveries_event"),
    # What is due, pending only (a delivered row leaves it); on Postgres half of each page
    # stays free, so that a lease's update is a HOT one (see migration 0012).
    Index(
        "ix_event_deliveries_due",
        "next_attempt_at",
        "id",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
    Index("ix_event_deliveries_subscription", "subscription_id", "id"),
    # A queue's pending rows, for the claim's "no earlier pending row" test (without it
    # the planner may scan every pending row per candidate).
    Index(
        "ix_event_deliveries_pending",
        "subscription_id",
        "execution_id",
        "seq",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
)

__all__ = [
    "EXECUTION_STATUSES",
    "HISTOGRAM_BUCKETS",
    "analytics_watermark",
    "api_keys",
    "api_sessions",
    "audit_log",
    "event_deliveries",
    "event_waits",
    "events",
    "execution_events",
    "execution_rollup_errors",
    "execution_rollups",
    "execution_steps",
    "metadata",
    "secrets",
    "subscriptions",
    "workflow_executions",
    "workflows",
]


schedules = Table(
    "schedules",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("namespace", String(100), nullable=False),
    Column("workflow_name", String(200), nullable=False),
    Column("workflow_version", String(100), nullable=True),  # NULL: the latest at each fire
    Column("cron", String(200), nullable=True),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("every_ms", BigInteger, nullable=True),
    Column("input", JSONType, nullable=False),
    Column("mode", String(20), nullable=False, server_default="auto"),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("tags", JSONType, nullable=False, server_default="[]"),
    Column("overlap", String(20), nullable=False, server_default="skip"),
    Column("catchup_window_ms", BigInteger, nullable=False),
    Column("jitter_ms", BigInteger, nullable=False, server_default="0"),
    Column("paused", Boolean, nullable=False, server_default=false()),
    # The next slot not yet handled; processes advance it with a guarded update.
    Column("next_slot", UTCDateTime(), nullable=False),
    Column("buffered_slot", UTCDateTime(), nullable=True),  # overlap buffer_one's held slot
    Column("revision", Integer, nullable=False, server_default="1"),
    Column("fired", BigInteger, nullable=False, server_default="0"),
    Column("skipped", BigInteger, nullable=False, server_default="0"),
    Column("last_slot", UTCDateTime(), nullable=True),
    Column("last_error", JSONType, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("(cron IS NULL) <> (every_ms IS NULL)", name="ck_schedules_one_calendar"),
    Index("ix_schedules_due", "paused", "next_slot"),
    Index("ix_schedules_namespace", "namespace", "created_at"),
)

# Rate limits' token buckets, one row per (namespace, workflow, key value): app/store/flow.py.
flow_buckets = Table(
    "flow_buckets",
    metadata,
    Column("bucket", String(600), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

__all__ = ["JSONType", "NullableJSON", "UTCDateTime", "metadata"]
