"""Replay then live: the event sequence a stream sends, with no gap and no duplicate."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from uuid import UUID

from app.events.bus import EventBus
from app.store.records import EventRecord
from app.store.repository import Repository

TERMINAL_EVENTS = frozenset({"execution.completed", "execution.failed", "execution.cancelled"})
BACKLOG_PAGE = 500


async def execution_events(
    repo: Repository, bus: EventBus, execution_id: UUID, after: int
) -> AsyncGenerator[list[EventRecord], None]:
    """Every event with seq > `after`, in order, ending after the terminal one; in batches
    of what is at hand at once (a backlog page, or what arrived live together), so that a
    stream sends them in one write.

    Subscribe first, then read the backlog, then skip what the backlog already had: an
    event committed during the backlog read arrives live and is dropped as a duplicate, and
    a live event that jumps ahead (a slow reader overflowed) is filled in from the store.
    In the backlog, a terminal event ends the stream only if it is the newest one: after a
    retry, the same execution goes on with a new attempt on the same stream. Resumed at or
    after the newest terminal event (nothing left to send), the stream ends at once."""
    last = after
    newest: EventRecord | None = None
    async with bus.subscribe(execution_id) as live:
        while True:  # backlog, page by page; holds a connection only while reading
            page = await repo.events_after(execution_id, last, BACKLOG_PAGE)
            if page:
                newest = page[-1]
                last = newest.seq
                yield page
            if len(page) < BACKLOG_PAGE:
                if await _at_end(repo, execution_id, newest, last):
                    return
                break
        while True:
            arrived = [await live.get()]
            while not live.empty():
                arrived.append(live.get_nowait())
            batch, ended = await _in_order(repo, execution_id, arrived, last)
            if batch:
                last = batch[-1].seq
                yield batch
            if ended:
                return


async def _in_order(
    repo: Repository, execution_id: UUID, arrived: list[EventRecord], last: int
) -> tuple[list[EventRecord], bool]:
    """The live events that follow `last`, gaps filled from the store, up to the terminal
    one; and whether it was reached."""
    batch: list[EventRecord] = []
    for event in arrived:
        if event.seq <= last:
            continue
        if event.seq > last + 1:
            for missed in await repo.events_after(execution_id, last, event.seq - last - 1):
                batch.append(missed)
                last = missed.seq
                if missed.type in TERMINAL_EVENTS:
                    return batch, True
            if event.seq <= last:
                continue
        batch.append(event)
        last = event.seq
        if event.type in TERMINAL_EVENTS:
            return batch, True
    return batch, False


async def _at_end(
    repo: Repository, execution_id: UUID, newest: EventRecord | None, last: int
) -> bool:
    """After the backlog: did it end with the terminal event, or was there nothing left
    because the stream resumed at (or past) the end of a finished execution?"""
    if newest is not None:
        return newest.type in TERMINAL_EVENTS
    return await repo.ended_by(execution_id, last)
