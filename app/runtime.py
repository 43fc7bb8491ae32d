"""Builds every part of a process (API or worker) at once, starts its background work, and
closes it all in order. A `Runtime` is whole when it exists: nothing is filled in later."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from app.circuits.breakers import CircuitBreakers
from app.config import Settings
from app.engine.runner import Runner
from app.events.bus import EventBus, InProcessBus
from app.events.redis_bus import RedisBus
from app.events.redis_writes import RedisWrites
from app.execution.active import ActiveRuns, drain
from app.execution.complexity import ComplexityAnalyzer, ComplexityThresholds
from app.execution.composition import Composer, CompositionBus, EventRetention
from app.execution.event_intake import EventIntake
from app.execution.flow import FlowGate
from app.execution.heartbeats import Heartbeat, WorkerHeartbeats
from app.execution.jobs import JobRunner
from app.execution.manager import ExecutionManager
from app.execution.queue import ArqQueue, InProcessQueue, arq_pool
from app.execution.reconciler import Reconciler
from app.execution.run import HeldRuns
from app.execution.scheduler import Scheduler
from app.execution.session import ExecutionSession
from app.execution.signals import LocalSignals, RedisSignals
from app.execution.steering import ExecutionControl
from app.execution.strategies import ImmediateExecutionStrategy, QueuedExecutionStrategy
from app.nodes.base import Services
from app.nodes.registry import NodeRegistry, default_registry
from app.observability import tracing
from app.observability.sampler import Sampler
from app.sinks.parts import SinkParts, build_sinks
from app.sinks.wake import OutboxBus
from app.store.composition import CompositionStore
from app.store.database import create_batch_engine, create_engine, upgrade_schema
from app.store.history import HistoryStore
from app.store.repository import Repository
from app.store.schedules import ScheduleStore
from app.store.schema import SchemaCheck

log = logging.getLogger(__name__)


# CPython collects its young generation every 700 new container objects: about every eight
# requests in the API. Creating 2,000 queued runs (bench.drain, the collector timed with
# gc.callbacks), the API spent 0.16-0.18 s collecting and the worker draining them 0.13 s;
# with what startup left frozen, the API 0.10 s; frozen and collected every 10,000 objects,
# the API 0.01-0.03 s and the worker 0.006 s.
GC_YOUNG_THRESHOLD = 10_000


def tune_collector() -> None:
    """For a process of its own, once started: what exists now lives as long as the process
    (frozen, the collector never scans it again); young objects are collected less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def make_owner_id(role: str) -> str:
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(kw_only=True, eq=False)
class Runtime:
    """Everything a process needs to accept and run executions (see `build_runtime`)."""

    settings: Settings
    role: str
    owner: str
    registry: NodeRegistry
    repo: Repository
    schema: SchemaCheck
    bus: EventBus
    http: httpx.AsyncClient
    # Redis, when configured: arq's pool also serves the bus, signals and heartbeats.
    redis: ArqRedis | None
    queue: ArqQueue | InProcessQueue
    active: ActiveRuns
    signals: LocalSignals | RedisSignals
    heartbeats: WorkerHeartbeats
    jobs: JobRunner
    flow: FlowGate
    manager: ExecutionManager
    control: ExecutionControl
    events: EventIntake  # POST /events (composition: README, Composition)
    # Whoever runs queued work also recovers orphans and beats: the workers, or this process
    # when it is its own worker (embedded default).
    reconciler: Reconciler | None
    heartbeat: Heartbeat | None
    sampler: Sampler
    # Every process fires due schedule slots; the database lets one execution per slot in.
    scheduler: Scheduler
    circuits: CircuitBreakers
    sinks: SinkParts  # event sinks: the subscription cache, and the delivery loop if we run work
    _draining: asyncio.Future[None] | None = field(default=None, init=False)

    async def start(self) -> None:
        """The I/O of starting: the schema, Redis, and the background tasks."""
        tracing.configure(self.role)
        if self.settings.is_sqlite:
            await upgrade_schema(self.settings.database_url)
            self.schema.mark_current()
        else:
            await self.schema.startup()
        if self.redis is not None:
            try:
                await self.redis.ping()
            except (OSError, RedisError, TimeoutError) as exc:
                # Started degraded (queued runs stay `pending`), as it runs degraded later.
                log.warning(
                    "Redis unreachable at startup (%s): queued runs are accepted as pending "
                    "and run once it is back",
                    exc,
                )
        if isinstance(self.signals, RedisSignals):
            await self.signals.start()
        if isinstance(self.queue, InProcessQueue):
            self.queue.start()
        if self.reconciler is not None:
            self.reconciler.start()
        if self.heartbeat is not None:
            self.heartbeat.start()
        self.sampler.start()
        self.scheduler.start()
        await self.sinks.start()
        log.info(
            "runtime started",
            extra={"role": self.role, "owner": self.owner, "embedded_queue": self.redis is None},
        )

    @property
    def draining(self) -> bool:
        """Shutting down: running executions are being handed over, and no new one starts."""
        return self._draining is not None

    def shutdown_runs(self) -> asyncio.Future[None]:
        """Drain this process's running executions (once; later calls share the first)."""
        if self._draining is None:
            self._draining = asyncio.ensure_future(
                drain(
                    self.active,
                    self.settings.shutdown_grace_ms / 1000,
                    self.settings.cancel_grace_ms / 1000,
                )
            )
        return asyncio.shield(self._draining)

    async def close(self) -> None:
        """Stop every part, in order; a part that fails to stop is logged and the others
        still stop (a worker leaves the workers' list even if its delivery loop would not
        close cleanly)."""
        steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("scheduler", self.scheduler.close),
            ("sampler", self.sampler.close),
            ("sinks", self.sinks.close),
        ]
        if self.reconciler is not None:
            steps.append(("reconciler", self.reconciler.close))
        if self.heartbeat is not None:
            steps.append(("heartbeat", self.heartbeat.close))
        steps += [
            ("runs", self.shutdown_runs),
            ("schedules", lambda: self.scheduler.settle(self.settings.cancel_grace_ms / 1000)),
            ("flow", self.flow.close),
        ]
        if isinstance(self.signals, RedisSignals):
            steps.append(("signals", self.signals.close))
        if isinstance(self.queue, InProcessQueue):
            steps.append(("queue", self.queue.close))
        steps.append(("bus", self.bus.close))
        if self.redis is not None:
            steps.append(("redis", self.redis.aclose))
        steps += [("http", self.http.aclose), ("database", self.repo.engine.dispose)]
        if self.repo.batch_engine is not self.repo.engine:
            steps.append(("database", self.repo.batch_engine.dispose))
        for name, step in steps:
            try:
                await step()
            except Exception:
                log.exception("cannot stop a part", extra={"part": name})
        tracing.flush()


def build_runtime(
    settings: Settings, role: str = "api", *, registry: NodeRegistry | None = None
) -> Runtime:
    """Every part, built and wired; connections open lazily, so this does no I/O."""
    owner = make_owner_id(role)
    registry = registry or default_registry()
    engine = create_engine(settings)
    redis = arq_pool(settings) if settings.redis_url else None
    runs_queued_work = role == "worker" or redis is None
    sinks = build_sinks(settings, engine, redis, owner, deliver=runs_queued_work)
    repo = Repository(engine, sinks.matcher, create_batch_engine(settings, engine))
    # The job enqueues and event publishes of this process: one Redis pipeline at a time.
    writes = RedisWrites(redis) if redis is not None else None
    sinks.signal.writes = writes
    fanout: EventBus = OutboxBus(
        RedisBus(redis, settings.key_prefix, writes) if redis is not None else InProcessBus(),
        sinks.matcher,
        sinks.signal,
    )
    # One shared client; its cookie jar stores nothing, so no run sees another's cookies.
    http = httpx.AsyncClient(
        timeout=settings.http_default_timeout_ms / 1000,
        follow_redirects=False,
        cookies=httpx.Cookies(CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))),
    )
    active = ActiveRuns()
    composition = CompositionStore(engine)
    composer = Composer(settings, composition, lambda request: manager.submit(request))
    circuits = CircuitBreakers.from_settings(settings, redis)

    def session(queued: bool) -> ExecutionSession:
        runner = Runner(
            Services(settings, http, queued=queued, composition=composer, circuits=circuits),
            registry,
            cancel_grace_s=settings.cancel_grace_ms / 1000,
        )
        return ExecutionSession(
            settings=settings, repo=repo, bus=bus, runner=runner, registry=registry
        )

    queue: ArqQueue | InProcessQueue
    if redis is not None:
        queue = ArqQueue(redis, settings.queue_name, batch_max=settings.queue_batch, writes=writes)
    else:
        queue = InProcessQueue(
            lambda execution_id: jobs.run(execution_id), settings.worker_concurrency_embedded
        )
    signals: LocalSignals | RedisSignals = (
        RedisSignals(redis, settings.key_prefix, active)
        if redis is not None
        else LocalSignals(active)
    )
    # Every writer publishes through it: what a run's end or park means for others follows.
    bus = CompositionBus(fanout, composition, queue, lambda: control)
    control = ExecutionControl(settings=settings, repo=repo, bus=bus, queue=queue, signals=signals)
    flow = FlowGate(repo=repo, bus=bus, queue=queue, control=control)

    def held(queued: bool) -> HeldRuns:
        return HeldRuns(
            session=session(queued=queued), queue=queue, active=active, owner=owner, flow=flow
        )

    jobs = JobRunner(
        repo=repo, bus=bus, held=held(queued=True), lease_ms=settings.lease_ms, flow=flow
    )
    immediate = ImmediateExecutionStrategy(
        settings=settings, repo=repo, bus=bus, held=held(queued=False)
    )
    manager = ExecutionManager(
        settings=settings,
        repo=repo,
        registry=registry,
        analyzer=ComplexityAnalyzer(
            ComplexityThresholds.from_settings(settings), registry=registry
        ),
        immediate=immediate,
        queued=QueuedExecutionStrategy(repo, bus, queue),
    )
    heartbeats = WorkerHeartbeats(redis, settings.key_prefix)
    scheduler = Scheduler(
        settings=settings,
        store=ScheduleStore(engine),
        manager=manager,
        control=control,
        owner=owner,
    )
    return Runtime(
        settings=settings,
        role=role,
        owner=owner,
        registry=registry,
        repo=repo,
        schema=SchemaCheck(engine, settings.database_url),
        bus=bus,
        http=http,
        redis=redis,
        queue=queue,
        active=active,
        signals=signals,
        heartbeats=heartbeats,
        jobs=jobs,
        flow=flow,
        manager=manager,
        control=control,
        events=EventIntake(composition, bus, manager.submit),
        reconciler=(
            Reconciler(
                settings, repo, queue, sweeps=[bus.sweep, EventRetention(settings, composition)]
            )
            if runs_queued_work
            else None
        ),
        heartbeat=(
            Heartbeat(heartbeats, owner, role, lambda: len(active)) if runs_queued_work else None
        ),
        sampler=Sampler(settings, HistoryStore(engine)),
        scheduler=scheduler,
        circuits=circuits,
        sinks=sinks,
    )
