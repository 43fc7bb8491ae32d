"""Prometheus metrics (served at `/metrics`)."""

from __future__ import annotations

from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)


class Children(Generic[M]):
    """A metric's children by their label values, given in the order the metric names its
    labels: a dict lookup per observation, where `labels()` checks, converts and locks."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._children: dict[tuple[object, ...], M] = {}

    def __call__(self, *values: object) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children.setdefault(values, self._metric.labels(*values))
        return child


EXECUTIONS_SUBMITTED = Counter(
    "turnout_executions_submitted_total", "Executions accepted, by track.", ["mode"]
)
EXECUTIONS_SETTLED = Counter(
    "turnout_executions_settled_total",
    "Runs that came to rest, by the status they reached.",
    ["status"],
)
RUN_SECONDS = Histogram(
    "turnout_run_seconds",
    "Time one runner spent on an execution until it came to rest.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
EXECUTIONS_RECOVERED = Counter(
    "turnout_executions_recovered_total",
    "Orphaned executions (lost job, expired lease) re-enqueued by the reconciler.",
)
STREAMS_OPEN = Gauge("turnout_sse_streams_open", "SSE streams open in this process.")
STEP_SECONDS = Histogram(
    "turnout_step_duration_seconds",
    "Wall time of one step attempt, by node type and the status it ended in.",
    ["node_type", "status"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
STEP_CPU_SECONDS = Counter(
    "turnout_step_cpu_seconds_total", "Thread CPU time spent in steps, by node type.", ["node_type"]
)
EXECUTIONS = Gauge(
    "turnout_executions", "Executions stored, by status and mode (sampled).", ["status", "mode"]
)
QUEUE_DEPTH = Gauge("turnout_queue_depth", "Pending executions waiting for a worker (sampled).")
QUEUE_OLDEST_AGE = Gauge(
    "turnout_queue_oldest_pending_age_seconds", "Age of the oldest pending execution (sampled)."
)
LEASE_TAKEOVERS = Counter(
    "turnout_lease_takeovers_total",
    "Running executions whose lease expired and were taken over by another runner.",
)
FLOW_REFUSALS = Counter(
    "turnout_flow_refusals_total",
    "Claims held back by flow control (concurrency key, namespace limit, rate limit).",
    ["reason"],
)
RETENTION_DELETED = Counter(
    "turnout_retention_deleted_total", "Executions deleted by the retention policy."
)
SCHEDULE_FIRES = Counter(
    "turnout_schedule_slots_total",
    "Schedule slots handled by this process, by outcome (fired, skipped).",
    ["outcome"],
)
CIRCUIT_STATE = Gauge(
    "turnout_circuit_state",
    "Circuit breaker of http.request per target: 0 closed, 1 half-open, 2 open.",
    ["namespace", "host"],
)
CIRCUIT_OPENS = Counter(
    "turnout_circuit_opens_total",
    "Times a circuit breaker opened (this process saw the failure that opened it).",
    ["namespace", "host"],
)
CIRCUIT_REJECTED = Counter(
    "turnout_circuit_rejected_total",
    "http.request calls refused with circuit_open without touching the network.",
    ["namespace", "host"],
)
