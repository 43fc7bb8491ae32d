"""Which runner processes are alive: each beats every few seconds; silence means gone."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from app.tasks import stop

log = logging.getLogger(__name__)

BEAT_S = 2.0
# A process missing three beats in a row is no longer listed.
ALIVE_S = 3 * BEAT_S


@dataclass(slots=True)
class WorkerBeat:
    owner: str
    role: str
    started_at: float
    beat_at: float
    running: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "role": self.role,
            "startedAt": self.started_at,
            "beatAt": self.beat_at,
            "running": self.running,
        }


class WorkerHeartbeats:
    """A registry in Redis (a sorted set of owners by last beat, plus each one's details),
    or in this process only when there is no Redis (the embedded default)."""

    def __init__(self, redis: Redis | None, key_prefix: str) -> None:
        self.redis = redis
        self.key = f"{key_prefix}:workers"
        self._local: dict[str, WorkerBeat] = {}

    async def beat(self, beat: WorkerBeat) -> None:
        if self.redis is None:
            self._local[beat.owner] = beat
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.key, {beat.owner: beat.beat_at})
            pipe.hset(f"{self.key}:info", beat.owner, json.dumps(beat.to_dict()))
            await pipe.execute()

    async def forget(self, owner: str) -> None:
        if self.redis is None:
            self._local.pop(owner, None)
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.key, owner)
            pipe.hdel(f"{self.key}:info", owner)
            await pipe.execute()

    async def alive(self) -> list[WorkerBeat]:
        """The processes that beat within the last `ALIVE_S` seconds, oldest first."""
        since = time.time() - ALIVE_S
        if self.redis is None:
            beats = [b for b in self._local.values() if b.beat_at >= since]
            return sorted(beats, key=lambda b: b.started_at)
        owners = [o.decode() for o in await self.redis.zrangebyscore(self.key, since, "+inf")]
        if not owners:
            return []
        found = await self.redis.hmget(f"{self.key}:info", owners)  # type: ignore[misc]
        beats = [WorkerBeat(**_fields(json.loads(raw))) for raw in found if raw]
        return sorted(beats, key=lambda b: b.started_at)


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "owner": data["owner"],
        "role": data["role"],
        "started_at": data["startedAt"],
        "beat_at": data["beatAt"],
        "running": data["running"],
    }


class Heartbeat:
    """The background task of one process: beats until closed, then leaves the registry."""

    def __init__(self, registry: WorkerHeartbeats, owner: str, role: str, running: Any) -> None:
        self.registry = registry
        self.owner = owner
        self.role = role
        self.running = running  # a callable giving how many executions run here now
        self.started_at = time.time()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            beat = WorkerBeat(self.owner, self.role, self.started_at, time.time(), self.running())
            try:
                await self.registry.beat(beat)
            except Exception:  # Redis down: the next beat tries again
                log.warning("worker heartbeat failed", exc_info=True)
            await asyncio.sleep(BEAT_S)

    async def close(self) -> None:
        """Stop beating and leave the registry: tried twice (a connection that a cancelled
        command left broken is replaced by then); otherwise the entry ages out in ALIVE_S."""
        await stop(self._task)
        for attempt in (1, 2):
            try:
                await self.registry.forget(self.owner)
                return
            except Exception:
                if attempt == 2:
                    log.warning("cannot leave the workers' list", exc_info=True)
