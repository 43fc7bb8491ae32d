"""arq connection settings derived from Turnout's settings."""

from __future__ import annotations

from arq.connections import RedisSettings

from app.config import Settings


def redis_settings(settings: Settings) -> RedisSettings:
    # Without REDIS_URL, arq's own default (localhost) applies, as `arq` users expect.
    return RedisSettings.from_dsn(settings.redis_url or "redis://localhost:6379")
