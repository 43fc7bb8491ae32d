"""GroupCommit (pure asyncio): batches form while a write is in flight, every caller gets
its own outcome, and no write is left waiting once the drainers stop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from app.store.batching import GroupCommit


class Writer:
    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on

    async def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        await asyncio.sleep(0.01)
        if self.fail_on in items and len(items) > 1:
            raise RuntimeError("the whole batch is refused")
        return [ValueError(i) if i == self.fail_on else i * 10 for i in items]


async def test_writes_arriving_during_a_statement_share_the_next_one() -> None:
    writer = Writer()
    group: GroupCommit[int, int] = GroupCommit(writer, max_rows=3, max_in_flight=1)
    results = await asyncio.gather(*(group.submit(i) for i in range(7)))
    assert results == [i * 10 for i in range(7)]
    assert writer.batches == [[0, 1, 2], [3, 4, 5], [6]]


async def test_a_refused_item_fails_only_its_caller() -> None:
    group: GroupCommit[int, int] = GroupCommit(Writer(fail_on=2), max_rows=10, max_in_flight=1)
    outcomes = await asyncio.gather(*(group.submit(i) for i in range(5)), return_exceptions=True)
    assert outcomes[:2] == [0, 10] and outcomes[3:] == [30, 40]
    assert isinstance(outcomes[2], ValueError)


async def test_same_key_never_shares_a_statement() -> None:
    writer = Writer()
    group: GroupCommit[int, int] = GroupCommit(
        writer, max_rows=10, max_in_flight=1, key=lambda i: i % 2
    )
    await asyncio.gather(*(group.submit(i) for i in range(5)))
    assert all(len({i % 2 for i in batch}) == len(batch) for batch in writer.batches)


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_a_write_submitted_as_a_drainer_ends_is_still_written(in_flight: int) -> None:
    writer = Writer()
    group: GroupCommit[int, int] = GroupCommit(writer, max_rows=10, max_in_flight=in_flight)
    loop = asyncio.get_running_loop()
    late: list[asyncio.Future[int]] = []

    async def write_then_submit(items: Sequence[int]) -> list[int | BaseException]:
        out = await writer(items)
        if not late and 99 not in items:
            # Runs after this drainer's last step and before its task's done-callback.
            loop.call_soon(lambda: late.append(group.enqueue(99)))
        return out

    group._write = write_then_submit
    assert await group.submit(1) == 10
    await asyncio.sleep(0)
    assert late
    assert await asyncio.wait_for(late[0], timeout=2) == 990
