"""Group commit: concurrent writes of one kind share a statement.

A write that finds no statement of its kind in flight goes at once (no added latency when
the service is idle); writes that arrive while one is in flight gather and go together in
the next statement, up to `max_rows`. So the window is the previous statement's own time
(about 1 ms on this machine's Postgres), and a batch grows with the load."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Gathers concurrent `submit` calls into calls of `write` with many items.

    `write` returns one outcome per item, in order; an exception it raises fails the whole
    batch, which is then written again one item at a time, so an error reaches only the
    caller whose item caused it. Items with the same `key` never share a statement."""

    def __init__(
        self,
        write: Callable[[Sequence[Item]], Awaitable[Sequence[Result | BaseException]]],
        *,
        max_rows: int,
        max_in_flight: int = 2,
        key: Callable[[Item], Hashable] | None = None,
    ) -> None:
        self._write = write
        self.max_rows = max_rows
        self.max_in_flight = max_in_flight
        self._key = key
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._drainers: set[asyncio.Task[None]] = set()
        # Drainers running, counted by the drainers themselves: a task's done-callback runs
        # later than its last step, so the set alone would let a write wait for no drainer.
        self._running = 0

    @property
    def waiting(self) -> int:
        """Writes asked and not yet taken by a statement."""
        return len(self._pending)

    async def settle(self) -> None:
        """Wait until every write asked so far is written (or failed)."""
        while self._drainers:
            await asyncio.wait(set(self._drainers))

    async def submit(self, item: Item) -> Result:
        # A cancelled caller does not cancel the shared statement (nor others' results).
        return await asyncio.shield(self.enqueue(item))

    def enqueue(self, item: Item) -> asyncio.Future[Result]:
        """Add a write to the next statement; its outcome, when written."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._running < self.max_in_flight:
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._drainers.add(task)
            task.add_done_callback(self._drainers.discard)
        return future

    def _take(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        rest: list[tuple[Item, asyncio.Future[Result]]] = []
        seen: set[Hashable] = set()
        for entry in self._pending:
            key = self._key(entry[0]) if self._key is not None else None
            if len(batch) >= self.max_rows or (key is not None and key in seen):
                rest.append(entry)
                continue
            if key is not None:
                seen.add(key)
            batch.append(entry)
        self._pending = rest
        return batch

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._take()
                futures = [f for _, f in batch]
                try:
                    await self._run([item for item, _ in batch], futures)
                except BaseException as exc:  # cancelled (shutdown): no caller waits forever
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                    raise
        finally:
            # No await between the empty check and here: a write submitted after it finds
            # a free slot and starts its own drainer.
            self._running -= 1

    async def _run(self, items: list[Item], futures: list[asyncio.Future[Result]]) -> None:
        try:
            outcomes = list(await self._write(items))
        except Exception as exc:
            if len(items) == 1:
                outcomes = [exc]
            else:
                log.warning(
                    "batched write failed, writing its items one by one",
                    extra={"items": len(items), "error": type(exc).__name__},
                )
                outcomes = []
                for item in items:
                    try:
                        outcomes.extend(await self._write([item]))
                    except Exception as one:
                        outcomes.append(one)
        for future, outcome in zip(futures, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
