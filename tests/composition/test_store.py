"""The composition store on Postgres: event idempotency and retention."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.engine.state import utcnow
from app.execution.composition import EventRetention
from app.store.composition import CompositionStore


async def test_retention_deletes_events_older_than_the_days(
    engine: AsyncEngine, settings: Settings
) -> None:
    store = CompositionStore(engine)
    await store.record_event("default", "old", {"n": 1}, "e-old")
    await store.record_event("default", "new", {"n": 2}, "e-new")
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE events SET received_at = :at WHERE event_id = 'e-old'"),
            {"at": utcnow() - timedelta(days=3)},
        )
    assert await EventRetention(settings, store)(0, 10) == 0  # retention off: all kept
    keep_two_days = settings.model_copy(update={"retention_days": 2})
    assert await EventRetention(keep_two_days, store)(0, 10) == 1
    assert await store.get_event("default", "e-old") is None
    assert await store.get_event("default", "e-new") is not None


async def test_a_repeated_id_keeps_the_first_event(engine: AsyncEngine) -> None:
    store = CompositionStore(engine)
    first, created = await store.record_event("acme", "x", {"v": 1}, "same")
    again, created_again = await store.record_event("acme", "x", {"v": 2}, "same")
    other, created_other = await store.record_event("beta", "x", {"v": 3}, "same")
    assert created and not created_again and created_other
    assert again == first and other.data == {"v": 3}
