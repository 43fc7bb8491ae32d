"""A worker's runtime stops every part even when one of them fails to stop."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.runtime import build_runtime


async def test_a_part_that_fails_to_stop_does_not_keep_the_worker_listed(
    settings: Settings, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = build_runtime(settings.model_copy(update={"schedule_tick_ms": 0}), "worker")
    await runtime.start()
    assert [b.owner for b in await runtime.heartbeats.alive()] == [runtime.owner]
    real_close = runtime.sinks.close

    async def broken_close() -> None:  # fault injection: the sinks stop, then raise
        await real_close()
        raise RuntimeError("the delivery loop did not stop cleanly")

    runtime.sinks.close = broken_close  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="app.runtime"):
        await runtime.close()
    assert any(getattr(r, "part", None) == "sinks" for r in caplog.records)
    # The later parts stopped too: the worker left the list (read with a live connection).
    other = build_runtime(settings, "api")
    try:
        assert runtime.owner not in [b.owner for b in await other.heartbeats.alive()]
    finally:
        await other.close()
