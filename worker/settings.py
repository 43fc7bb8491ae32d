"""arq connection settings derived from Turnout's settings (kept here for `worker.*` users)."""

from __future__ import annotations

from app.execution.queue import redis_settings

__all__ = ["redis_settings"]
