"""Breaker state in Redis, shared by every API and worker process.

Each breaker is a hash `{prefix}:circuit:{namespace}:{name}` (state, times, probe lease,
thresholds, opens) and a sorted set `...:f` of its failure times; `{prefix}:circuits` indexes
them for listing. Every decision is one Lua script, so it is atomic across processes, and
uses the Redis server's clock (`TIME`), so processes agree on when a cool-down ends and on
whose probe lease has run out. The rules are those of app/circuits/policy.py.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from redis.asyncio import Redis

from app.circuits.local import matches, now_ms
from app.circuits.policy import HALF_OPEN_RETRY_MS, Admission, CircuitPolicy, State, target_of
from app.circuits.view import CircuitView

Outcome = Literal["success", "failure", "abandoned"]
DAY_MS = 86_400_000

_PRELUDE = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h, z, index = KEYS[1], KEYS[2], KEYS[3]
local member, token = ARGV[1], ARGV[2]
local failures, window, cooldown, ttl =
  tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local state = redis.call('HGET', h, 'state') or 'closed'
redis.call('HSET', h, 'failures_max', failures, 'window_ms', window, 'cooldown_ms', cooldown,
  'touched', now)
if state == 'closed' then redis.call('HSET', h, 'state', 'closed') end
redis.call('PEXPIRE', h, ttl)
redis.call('ZADD', index, now, member)
local function count()
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now - window)
  return redis.call('ZCARD', z)
end
"""

ADMIT = (
    _PRELUDE
    + """
local lease = tonumber(ARGV[3])
if state == 'closed' then return {1, 0, state, count(), 0, 0} end
local next_probe = tonumber(redis.call('HGET', h, 'next_probe_at') or now)
local probe_until = tonumber(redis.call('HGET', h, 'probe_until') or 0)
if state == 'open' and now < next_probe then
  return {0, 0, state, count(), next_probe, next_probe}
end
if state == 'half_open' and now < probe_until then
  return {0, 0, state, count(), math.min(probe_until, now + tonumber(ARGV[8])), next_probe}
end
redis.call('HSET', h, 'state', 'half_open', 'probe_token', token, 'probe_until', now + lease)
return {1, 1, 'half_open', count(), 0, next_probe}
"""
)

REPORT = (
    _PRELUDE
    + """
local outcome = ARGV[3]
local probing = state == 'half_open' and redis.call('HGET', h, 'probe_token') == token
local function open()
  redis.call('HSET', h, 'state', 'open', 'opened_at', now, 'next_probe_at', now + cooldown,
    'probe_until', 0)
  redis.call('HDEL', h, 'probe_token')
  redis.call('HINCRBY', h, 'opens', 1)
  return 'opened'
end
if outcome == 'success' then
  if state == 'closed' then redis.call('DEL', z) return '' end
  if probing then
    redis.call('HSET', h, 'state', 'closed', 'probe_until', 0)
    redis.call('HDEL', h, 'probe_token', 'opened_at', 'next_probe_at')
    redis.call('DEL', z)
    return 'closed'
  end
  return ''
elseif outcome == 'failure' then
  if state == 'closed' then
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now - window)
    redis.call('ZADD', z, now, token)
    redis.call('PEXPIRE', z, ttl)
    if redis.call('ZCARD', z) >= failures then return open() end
    return ''
  end
  if probing then return open() end
  return ''
end
if probing then
  redis.call('HSET', h, 'probe_until', 0)
  redis.call('HDEL', h, 'probe_token')
end
return ''
"""
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisCircuits:
    """The `CircuitStore` shared through Redis (keys under the service's key prefix)."""

    shared = True

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:circuit"
        self.index = f"{prefix}:circuits"
        self._admit = redis.register_script(ADMIT)
        self._report = redis.register_script(REPORT)

    def _keys(self, namespace: str, name: str) -> list[str]:
        key = f"{self.prefix}:{namespace}:{name}"
        return [key, f"{key}:f", self.index]

    @staticmethod
    def _member(namespace: str, name: str) -> str:
        return f"{namespace}\n{name}"

    @staticmethod
    def _args(policy: CircuitPolicy) -> list[str | int]:
        ttl = 2 * max(policy.window_ms, policy.cooldown_ms) + DAY_MS
        return [policy.failures, policy.window_ms, policy.cooldown_ms, ttl]

    async def admit(
        self, namespace: str, name: str, policy: CircuitPolicy, token: str, lease_ms: int
    ) -> Admission:
        args: list[str | int] = [self._member(namespace, name), token, lease_ms]
        args += self._args(policy)
        allowed, probe, state, failures, retry_at, next_probe = await self._admit(
            keys=self._keys(namespace, name), args=[*args, HALF_OPEN_RETRY_MS]
        )
        state_text = cast(State, _text(state))
        return Admission(
            bool(allowed),
            probe=bool(probe),
            state=state_text,
            failures=int(failures),
            retry_at_ms=int(retry_at),
            next_probe_at_ms=int(next_probe),
        )

    async def report(
        self, namespace: str, name: str, policy: CircuitPolicy, token: str, outcome: Outcome
    ) -> str | None:
        args: list[str | int] = [self._member(namespace, name), token, outcome]
        args += self._args(policy)
        result = _text(await self._report(keys=self._keys(namespace, name), args=args))
        return result or None

    async def views(self, namespace: str | None) -> list[CircuitView]:
        members = [_text(m) for m in await self.redis.zrange(self.index, 0, -1)]
        split = [m.split("\n", 1) for m in members if "\n" in m]
        pairs = [(ns, name) for ns, name in split if namespace is None or ns == namespace]
        now = now_ms()
        async with self.redis.pipeline(transaction=False) as pipe:
            for ns, name in pairs:
                pipe.hgetall(self._keys(ns, name)[0])
            rows = await pipe.execute()
        views, gone = [], []
        for (ns, name), row in zip(pairs, rows, strict=True):
            fields = {_text(k): _text(v) for k, v in row.items()}
            if not fields:
                gone.append(self._member(ns, name))  # expired: idle for a day or more
                continue
            policy = CircuitPolicy(
                int(fields["failures_max"]), int(fields["window_ms"]), int(fields["cooldown_ms"])
            )
            failures = await self.redis.zcount(
                self._keys(ns, name)[1], f"({now - policy.window_ms}", "+inf"
            )
            views.append(
                CircuitView(
                    namespace=ns,
                    name=name,
                    policy=policy,
                    state=fields.get("state", "closed"),
                    failures=int(failures),
                    opened_at_ms=_int(fields.get("opened_at")),
                    next_probe_at_ms=_int(fields.get("next_probe_at")),
                    opens=int(fields.get("opens", 0)),
                    touched_ms=int(fields.get("touched", 0)),
                )
            )
        if gone:
            await self.redis.zrem(self.index, *gone)
        return sorted(views, key=lambda v: (v.namespace, v.name))

    async def reset(self, namespace: str, target: str) -> list[str]:
        names = [v.name for v in await self.views(namespace) if matches(target_of(v.name), target)]
        for name in names:
            keys = self._keys(namespace, name)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(keys[0], keys[1])
                pipe.zrem(self.index, self._member(namespace, name))
                await pipe.execute()
        return names


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None
