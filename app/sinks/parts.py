"""The event sinks of one process, built at once: the subscription cache every process
needs (its writes match against it), and the delivery loop of the processes that deliver."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth.vault import Vault
from app.config import Settings
from app.nodes.ssrf import AddressGuard
from app.sinks.base import Sink
from app.sinks.cache import SubscriptionCache
from app.sinks.dispatcher import Dispatcher
from app.sinks.redis_stream import RedisStreamSink
from app.sinks.sealing import SecretSeal
from app.sinks.wake import OutboxSignal
from app.sinks.webhook import WebhookSink
from app.store.database import POOL_RECYCLE_S, make_engine
from app.store.deliveries import DeliveryStore
from app.store.outbox import OutboxMatcher
from app.store.subscriptions import SubscriptionStore


def address_guard(settings: Settings) -> AddressGuard:
    """The `http.request` guard, from the same settings: webhooks reach what it allows."""
    return AddressGuard(
        allow_private=settings.http_allow_private, allowlist=settings.http_allowlist
    )


@dataclass(kw_only=True, eq=False)
class SinkParts:
    matcher: OutboxMatcher
    store: SubscriptionStore
    deliveries: DeliveryStore
    cache: SubscriptionCache
    signal: OutboxSignal
    seal: SecretSeal
    guard: AddressGuard
    has_redis: bool
    dispatcher: Dispatcher | None
    own_engine: AsyncEngine | None = None  # the delivery loop's pool, when it has its own

    async def start(self) -> None:
        await self.cache.start()
        if self.dispatcher is not None:
            self.dispatcher.start()

    async def close(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.close()
        await self.signal.close()
        await self.cache.close()
        if self.own_engine is not None:
            await self.own_engine.dispose()


# The delivery loop's plans, whatever the statistics and whenever made (a generic plan made
# over a new install's empty table is all seq scans): index scans in the indexes' order,
# planned each time, and no JIT (the penalty on an unavoidable sort is above its threshold).
# See app/store/pg_deliveries.py and tests/sinks/test_claim_plans.py.
SINK_SERVER_SETTINGS = {
    "application_name": "turnout-sinks",
    "enable_bitmapscan": "off",
    "enable_seqscan": "off",
    "enable_sort": "off",
    "jit": "off",
    "plan_cache_mode": "force_custom_plan",
}


def build_sinks(
    settings: Settings, engine: AsyncEngine, redis: Redis | None, owner: str, *, deliver: bool
) -> SinkParts:
    matcher = OutboxMatcher()
    store = SubscriptionStore(engine)
    own_engine = None
    if deliver and not settings.is_sqlite:
        # Its own few connections: a delivery backlog never makes runs wait for the pool.
        # (SQLite keeps one engine: its writers take turns per engine.)
        # With the planner settings above: the delivery loop's statements only (the
        # API's and dashboard's reads of deliveries keep the runs' engine).
        own_engine = make_engine(
            settings.database_url,
            pool_size=settings.sink_db_pool_size,
            max_overflow=0,
            pool_recycle=POOL_RECYCLE_S,
            server_settings=SINK_SERVER_SETTINGS,
        )
    deliveries = DeliveryStore(engine)  # what the API and the dashboard read
    cache = SubscriptionCache(store, matcher, settings.sink_cache_ms)
    signal = OutboxSignal(redis, settings.key_prefix)
    seal = SecretSeal(Vault(settings.secret_key))
    guard = address_guard(settings)
    dispatcher = None
    if deliver:
        sinks: dict[str, Sink] = {"webhook": WebhookSink(guard, settings.sink_timeout_ms)}
        if redis is not None:
            sinks["redis-stream"] = RedisStreamSink(redis, settings.sink_stream_maxlen)
        dispatcher = Dispatcher(
            settings=settings,
            owner=owner,
            deliveries=DeliveryStore(own_engine) if own_engine is not None else deliveries,
            subscriptions=store,
            cache=cache,
            sinks=sinks,
            seal=seal,
            signal=signal,
        )
    return SinkParts(
        matcher=matcher,
        store=store,
        deliveries=deliveries,
        cache=cache,
        signal=signal,
        seal=seal,
        guard=guard,
        has_redis=redis is not None,
        dispatcher=dispatcher,
        own_engine=own_engine,
    )
