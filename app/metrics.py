"""Prometheus metrics (served at `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
