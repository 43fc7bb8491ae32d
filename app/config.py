"""Settings, read from the environment (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of Turnout. `DATABASE_URL` and `REDIS_URL` keep the seed's names."""

    model_config = SettingsConfigDict(env_prefix="TURNOUT_", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///./turnout.db",
        validation_alias=AliasChoices("DATABASE_URL", "TURNOUT_DATABASE_URL"),
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "TURNOUT_REDIS_URL")
    )
    db_pool_size: int = 10
    db_max_overflow: int = 10
    # The group-committed writes' own connections (and as many more at a peak), on Postgres.
    db_batch_pool_size: int = Field(default=4, ge=1)

    # Queue (arq) settings.
    queue_name: str = "turnout:queue"
    key_prefix: str = "turnout"
    worker_max_jobs: int = 100
    # Executions enqueued together share an arq job of up to this many (1: a job each).
    queue_batch: int = Field(default=20, ge=1, le=1000)
    worker_poll_delay_ms: int = 2
    # An idle worker takes the job a wake-up offers without reading it from the queue.
    worker_direct_start: bool = True
    worker_concurrency_embedded: int = 20

    # Limits on what a client may send.
    max_nodes: int = 10_000
    max_body_bytes: int = 5 * 1024 * 1024
    max_foreach_items: int = 100_000
    # JSON values (input, metadata, step outputs) may nest at most this many levels.
    max_json_depth: int = 64

    # Immediate runs.
    immediate_budget_ms: int = 30_000

    # Complexity rule thresholds (auto mode).
    complexity_max_nodes: int = 10
    complexity_max_duration_ms: int = 30_000
    complexity_queue_human_input: bool = True
    complexity_queue_external_loops: bool = True

    # Durable delays: a queued delay at least this long frees the worker.
    durable_delay_threshold_ms: int = 5_000

    # Control: how long a pause/cancel request waits for the runner before answering.
    control_wait_ms: int = 5_000
    cancel_grace_ms: int = 5_000

    # Leases: a runner renews its lease every heartbeat; a lease not renewed expires.
    lease_ms: int = 3_000
    heartbeat_ms: int = 1_000

    # Recovery: how often the reconciler looks for orphaned executions (0 turns it off), how
    # long a `pending` row may go without a job before it counts as orphaned, and how many
    # it re-enqueues per pass.
    reconcile_interval_ms: int = 1_000
    reconcile_pending_grace_ms: int = 3_000
    reconcile_batch: int = 500
    # Schedules (README, Schedules): how often each process looks for due slots (0: never),
    # how many schedules one pass takes, the catch-up window of a schedule that sets none,
    # the most missed slots one catch-up fires, the lateness always tolerated, and how many
    # `nextFires` a schedule shows.
    schedule_tick_ms: int = 500
    schedule_batch: int = 100
    schedule_catchup_window_ms: int = 60_000
    schedule_max_catchup: int = 10
    schedule_grace_ms: int = 2_000
    schedule_next_fires: int = 5
    # A run whose lease expired this many times in a row (takeovers of one attempt) fails
    # with `recovery_exhausted` instead of being claimed again.
    max_recoveries: int = 5
    # Shutdown (SIGTERM): how long running steps may take to finish before they are
    # cancelled, checkpointed and handed back to the queue.
    shutdown_grace_ms: int = 5_000

    # Outbound HTTP.
    http_allow_private: bool = False
    http_allowlist: list[str] = Field(default_factory=list)
    http_default_timeout_ms: int = 30_000
    http_max_response_bytes: int = 10 * 1024 * 1024
    http_send_idempotency_key: bool = True
    # Circuit breakers of http.request (README "Circuit breakers"): open after this many
    # failures within the window, stay open for the cool-down, then let one probe through.
    circuit_failures: int = Field(default=5, ge=1, le=10_000)
    circuit_window_ms: int = Field(default=60_000, ge=1, le=86_400_000)
    circuit_cooldown_ms: int = Field(default=30_000, ge=1, le=86_400_000)

    # Persistence batching: pure steps are flushed at least this often.
    checkpoint_interval_ms: int = 200

    # Server-sent events.
    sse_heartbeat_s: float = 15.0

    # Security (README "Security"). auth: "auto" is on as soon as a key exists.
    auth: Literal["auto", "required", "off"] = "auto"
    open_readyz: bool = False
    open_metrics: bool = False
    session_ttl_s: int = 12 * 3600
    session_cookie_secure: bool = False  # set it behind HTTPS
    rate_limit_per_s: float = 50.0  # per key; 0 turns rate limits off
    rate_limit_burst: int = 100
    cors_origins: list[str] = Field(default_factory=list)
    secret_key: str | None = None  # Fernet key for the secrets store
    # Service-wide run limits (a workflow's `limits` may lower or raise them; 0 = no limit).
    max_steps: int = 0
    max_output_bytes: int = 0
    max_duration_ms: int = 0

    # Flow control: executions running at once per namespace (0: no limit), README.
    namespace_concurrency: int = Field(default=0, ge=0)
    # Event sinks (README "Event sinks"): how often each process reloads its subscriptions,
    # how often a delivery loop looks for due deliveries when nothing woke it, how many
    # (execution, subscription) queues one claim takes and how long it holds them, the
    # webhook timeout, the retry schedule, and the cap of a Redis stream (MAXLEN ~).
    sink_cache_ms: int = Field(default=1_000, ge=10)
    sink_poll_ms: int = Field(default=500, ge=1)
    sink_batch: int = Field(default=50, ge=1)
    # A batched subscription's next delivery waits until this long after the one before
    # started (unless a full batch waits): fewer, bigger deliveries under load.
    sink_linger_ms: int = Field(default=20, ge=0, le=10_000)
    sink_lease_ms: int = Field(default=30_000, ge=100)
    sink_timeout_ms: int = Field(default=10_000, ge=1)
    sink_retry_base_ms: int = Field(default=2_000, ge=1)
    sink_retry_max_ms: int = Field(default=3_600_000, ge=1)
    sink_max_attempts: int = Field(default=12, ge=1)
    sink_stream_maxlen: int = Field(default=100_000, ge=1)
    sink_db_pool_size: int = Field(default=4, ge=1)  # the delivery loop's own connections
    # Delivered and dead deliveries are deleted after this many days.
    sink_retention_days: float = Field(default=7.0, gt=0)

    log_level: str = "INFO"
    log_json: bool = True

    # Observability (README, Observability): the worker's own /metrics port (off if unset),
    # how often the sampled gauges (queue depth, live executions) are refreshed, how many
    # completed runs of a registered version feed the analyzer (0: none), and retention:
    # ended executions older than this many days are deleted (off if unset), in batches.
    worker_metrics_port: int | None = None
    metrics_sample_ms: int = 5_000
    analyzer_history_runs: int = 20
    retention_days: float | None = Field(default=None, gt=0)
    retention_batch: int = Field(default=1_000, ge=1)

    # Composition (README, Composition): how deep child workflows may nest, and how long an
    # event is kept for a `wait.event` that parks just after it arrived.
    max_child_depth: int = Field(default=5, ge=0, le=100)
    event_keep_ms: int = Field(default=60_000, ge=0)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
