"""Bounded recovery on both databases: a run whose runners keep dying is failed with
`recovery_exhausted` after TURNOUT_MAX_RECOVERIES takeovers, instead of claimed forever."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from app.config import Settings
from app.runtime import Runtime, build_runtime
from app.store.repository import Repository
from tests.conftest import IsolatedSettings
from tests.support.executions import insert_pending

ONE_STEP = {"nodes": [{"id": "a", "type": "noop"}]}
STARTED: tuple[str, dict[str, Any]] = ("execution.started", {})
MAX_RECOVERIES = 2


@pytest.fixture(params=["postgresql", "sqlite"])
async def runtime(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> AsyncIterator[Runtime]:
    # No reconciler: the test alone decides who claims the execution, and when.
    over: dict[str, Any] = {"max_recoveries": MAX_RECOVERIES, "reconcile_interval_ms": 0}
    if request.param == "postgresql":
        cfg = settings.model_copy(update=over)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'turnout.db'}"
        cfg = IsolatedSettings(DATABASE_URL=url, log_json=False, **over)
    rt = build_runtime(cfg, role="worker")
    await rt.start()
    try:
        yield rt
    finally:
        await rt.close()


async def claimed_by_dying_runners(repo: Repository, execution_id: UUID, takeovers: int) -> None:
    """A first claim, then `takeovers` more: each runner's lease expires at once, unrenewed."""
    for i in range(takeovers + 1):
        assert await repo.claim(execution_id, f"dead-{i}", 0, STARTED) is not None


async def started_and_last(repo: Repository, execution_id: UUID) -> tuple[int, str]:
    events = await repo.events_after(execution_id, 0)
    return sum(e.type == "execution.started" for e in events), events[-1].type


async def test_a_run_whose_runners_keep_dying_fails_with_recovery_exhausted(
    runtime: Runtime,
) -> None:
    execution_id = await insert_pending(runtime.repo, ONE_STEP)
    await claimed_by_dying_runners(runtime.repo, execution_id, takeovers=MAX_RECOVERIES)
    assert (await runtime.repo.get_execution(execution_id)).recoveries == MAX_RECOVERIES

    await runtime.jobs.run(execution_id)  # one takeover more than allowed

    record = await runtime.repo.get_execution(execution_id)
    assert record.status == "failed"
    assert record.error is not None and record.error["code"] == "recovery_exhausted"
    assert f"TURNOUT_MAX_RECOVERIES={MAX_RECOVERIES}" in record.error["message"]
    assert record.lease_owner is None
    assert await started_and_last(runtime.repo, execution_id) == (
        MAX_RECOVERIES + 2,
        "execution.failed",
    )
    assert await runtime.repo.claim(execution_id, "late", 60_000, STARTED) is None


async def test_a_run_within_its_recovery_budget_is_taken_over_and_completes(
    runtime: Runtime,
) -> None:
    execution_id = await insert_pending(runtime.repo, ONE_STEP)
    await claimed_by_dying_runners(runtime.repo, execution_id, takeovers=MAX_RECOVERIES - 1)

    await runtime.jobs.run(execution_id)  # the last takeover allowed

    record = await runtime.repo.get_execution(execution_id)
    assert record.status == "completed", record.error
    assert record.recoveries == 0  # came to rest: a later takeover starts a new count
