"""Builds the shared parts once per process (API or worker) and closes them in order."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import uuid
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
from redis.asyncio import Redis

from app.config import Settings
from app.engine.runner import Runner
from app.events.bus import EventBus, InProcessBus
from app.events.redis_bus import RedisBus
from app.execution.complexity import ComplexityAnalyzer, ComplexityThresholds
from app.execution.control import ExecutionControl
from app.execution.heartbeats import Heartbeat, WorkerHeartbeats
from app.execution.jobs import ActiveRuns, JobRunner, drain
from app.execution.manager import ExecutionManager
from app.execution.queue import ArqQueue, ExecutionQueue, InProcessQueue
from app.execution.reconciler import Reconciler
from app.execution.session import ExecutionSession
from app.execution.signals import LocalSignals, RedisSignals
from app.execution.strategies import ImmediateExecutionStrategy, QueuedExecutionStrategy
from app.nodes.base import Services
from app.nodes.registry import NodeRegistry, default_registry
from app.observability import tracing
from app.observability.sampler import Sampler
from app.store.database import create_engine, upgrade_schema
from app.store.history import HistoryStore
from app.store.repository import Repository
from app.store.schema import SchemaCheck

log = logging.getLogger(__name__)


def make_owner_id(role: str) -> str:
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Runtime:
    """Everything a process needs to accept and run executions."""

    def __init__(
        self,
        settings: Settings,
        *,
        role: str = "api",
        registry: NodeRegistry | None = None,
        queued_services: bool = False,
    ) -> None:
        self.settings = settings
        self.role = role
        self.owner = make_owner_id(role)
        self.registry = registry or default_registry()
        self.engine = create_engine(settings)
        self.repo = Repository(self.engine)
        self.schema = SchemaCheck(self.engine, settings.database_url)
        self.redis: Redis | None = (
            Redis.from_url(settings.redis_url) if settings.redis_url else None
        )
        self.bus: EventBus = (
            RedisBus(self.redis, settings.key_prefix) if self.redis is not None else InProcessBus()
        )
        # One shared client; its cookie jar stores nothing, so no run sees another's cookies.
        self.http = httpx.AsyncClient(
            timeout=settings.http_default_timeout_ms / 1000,
            follow_redirects=False,
            cookies=httpx.Cookies(CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))),
        )
        self.active = ActiveRuns()
        self.heartbeats = WorkerHeartbeats(self.redis, settings.key_prefix)
        self.heartbeat: Heartbeat | None = None
        grace_s = settings.cancel_grace_ms / 1000
        self.runner = Runner(
            Services(settings, self.http, queued=False), self.registry, cancel_grace_s=grace_s
        )
        self.queued_runner = Runner(
            Services(settings, self.http, queued=True), self.registry, cancel_grace_s=grace_s
        )
        self.session = ExecutionSession(
            settings=settings,
            repo=self.repo,
            bus=self.bus,
            runner=self.runner,
            registry=self.registry,
        )
        self.queue: ExecutionQueue
        self.embedded_queue: InProcessQueue | None = None
        self.arq_pool: Any = None
        self.jobs: JobRunner | None = None
        self.manager: ExecutionManager | None = None
        self.reconciler: Reconciler | None = None
        self.sampler: Sampler | None = None
        self._draining: asyncio.Future[None] | None = None
        self.control: ExecutionControl | None = None
        self.signals: LocalSignals | RedisSignals = (
            RedisSignals(self.redis, settings.key_prefix, self.active)
            if self.redis is not None
            else LocalSignals(self.active)
        )

    async def start(self) -> None:
        tracing.configure(self.role)
        self.sampler = Sampler(self.settings, HistoryStore(self.engine))
        if self.settings.is_sqlite:
            await upgrade_schema(self.settings.database_url)
            self.schema.mark_current()
        else:
            await self.schema.startup()
        if self.settings.redis_url:
            self.arq_pool = await self._arq_pool()
            self.queue = ArqQueue(self.arq_pool, self.settings.queue_name)
        else:
            self.embedded_queue = InProcessQueue(
                self.run_job, self.settings.worker_concurrency_embedded
            )
            self.queue = self.embedded_queue
        queued_session = ExecutionSession(
            settings=self.settings,
            repo=self.repo,
            bus=self.bus,
            runner=self.queued_runner,
            registry=self.registry,
        )
        self.jobs = JobRunner(
            repo=self.repo,
            bus=self.bus,
            session=queued_session,
            queue=self.queue,
            active=self.active,
            owner=self.owner,
            lease_ms=self.settings.lease_ms,
        )
        self.manager = ExecutionManager(
            settings=self.settings,
            repo=self.repo,
            registry=self.registry,
            analyzer=ComplexityAnalyzer(
                ComplexityThresholds.from_settings(self.settings), registry=self.registry
            ),
            immediate=ImmediateExecutionStrategy(
                settings=self.settings,
                repo=self.repo,
                bus=self.bus,
                session=self.session,
                queue=self.queue,
                active=self.active,
                owner=self.owner,
            ),
            queued=QueuedExecutionStrategy(self.repo, self.bus, self.queue),
        )
        self.control = ExecutionControl(
            settings=self.settings,
            repo=self.repo,
            bus=self.bus,
            queue=self.queue,
            signals=self.signals,
        )
        if isinstance(self.signals, RedisSignals):
            await self.signals.start()
        if self.embedded_queue is not None:
            self.embedded_queue.start()
        # Whoever runs queued work also recovers orphans: the workers, or this process when
        # it is its own worker (embedded default).
        if self.role == "worker" or self.embedded_queue is not None:
            self.reconciler = Reconciler(self.settings, self.repo, self.queue)
            self.reconciler.start()
            self.heartbeat = Heartbeat(
                self.heartbeats, self.owner, self.role, lambda: len(self.active)
            )
            self.heartbeat.start()
        self.sampler.start()
        log.info(
            "runtime started",
            extra={"role": self.role, "owner": self.owner, "embedded_queue": not self.arq_pool},
        )

    async def _arq_pool(self) -> Any:
        """arq's pool; if Redis is down at startup, one that connects when it is back, so the
        process starts degraded (queued runs stay `pending`) as it runs degraded later."""
        from arq import create_pool
        from arq.connections import ArqRedis
        from redis.exceptions import RedisError

        from worker.settings import redis_settings

        config = redis_settings(self.settings)
        try:
            return await create_pool(dataclasses.replace(config, conn_retries=0))
        except (OSError, RedisError, TimeoutError) as exc:
            log.warning(
                "Redis unreachable at startup (%s): queued runs are accepted as pending and "
                "run once it is back",
                exc,
            )
        pool = ArqRedis(
            host=config.host,
            port=config.port,
            db=config.database,
            username=config.username,
            password=config.password,
            ssl=config.ssl,
            socket_connect_timeout=config.conn_timeout,
            encoding="utf8",
        )
        return pool

    async def run_job(self, execution_id: uuid.UUID) -> None:
        assert self.jobs is not None
        await self.jobs.run(execution_id)

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
        if self.sampler is not None:
            await self.sampler.close()
        if self.reconciler is not None:
            await self.reconciler.close()
        if self.heartbeat is not None:
            await self.heartbeat.close()
        await self.shutdown_runs()
        if isinstance(self.signals, RedisSignals):
            await self.signals.close()
        if self.embedded_queue is not None:
            await self.embedded_queue.close()
        if self.arq_pool is not None:
            await self.arq_pool.aclose()
        await self.bus.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.http.aclose()
        await self.engine.dispose()
        tracing.flush()
