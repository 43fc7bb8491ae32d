"""`Client.run_many` / `AsyncClient.run_many`: many runs through `POST /workflow/runs`."""

from __future__ import annotations

from typing import Any

from tests.client.conftest import HELLO
from turnout import ApiError, AsyncClient, Client, Execution, NotFound, ValidationFailed


def test_run_many_answers_each_run_and_the_runs_complete(embedded_url: str) -> None:
    runs: list[dict[str, Any]] = [{"workflow": HELLO, "input": {"name": f"n{i}"}} for i in range(5)]
    runs.insert(2, {"workflowId": "nobody-registered-this"})
    runs.insert(4, {"workflow": HELLO, "options": {"priority": -1}})
    with Client(embedded_url) as client:
        results = client.run_many(runs)
        assert [type(r) for r in results] == [
            Execution,
            Execution,
            NotFound,
            Execution,
            ValidationFailed,
            Execution,
            Execution,
        ]
        refused = results[4]
        assert isinstance(refused, ApiError) and refused.status_code == 422
        assert refused.problems[0].field == "runs[4].options.priority"
        done = [client.wait(r.id, timeout=20) for r in results if isinstance(r, Execution)]
    assert [e.result for e in done] == [{"message": f"Hello, n{i}!"} for i in range(5)]
    assert all(e.mode == "queued" for e in done)


def test_run_many_sends_over_1000_runs_in_several_requests(embedded_url: str) -> None:
    runs = [{"workflow": HELLO, "input": {"name": "x"}, "mode": "queued"}] * 1001
    with Client(embedded_url) as client:
        results = client.run_many(runs)
        assert len(results) == 1001 and all(isinstance(r, Execution) for r in results)
        assert len({r.id for r in results if isinstance(r, Execution)}) == 1001  # own keys


async def test_async_run_many_replays_a_known_key(embedded_url: str) -> None:
    run = {"workflow": HELLO, "input": {"name": "k"}, "idempotencyKey": "same-run"}
    async with AsyncClient(embedded_url) as client:
        first = await client.run_many([run])
        again = await client.run_many([run, {**run, "input": {"name": "other"}}])
        assert isinstance(first[0], Execution) and isinstance(again[0], Execution)
        assert again[0].id == first[0].id
        assert isinstance(again[1], ApiError) and again[1].code == "idempotency_conflict"
        assert (await client.wait(first[0].id, timeout=20)).result == {"message": "Hello, k!"}
