"""A run with no parent and no `workflow` step ends without the composition read."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

from app.events.bus import InProcessBus
from app.execution.composition import CompositionBus, may_compose
from app.execution.queue import InProcessQueue
from app.store.composition import CompositionStore
from app.store.database import make_engine, upgrade_schema
from app.store.records import EventRecord


def test_may_compose_finds_a_workflow_node_anywhere() -> None:
    plain = {"nodes": [{"id": "a", "type": "transform", "params": {"value": 1}}]}
    nested = {
        "nodes": [{"id": "f", "type": "foreach", "params": {"template": {"type": "workflow"}}}]
    }
    assert not may_compose(plain)
    assert may_compose({"nodes": [{"id": "c", "type": "workflow"}]})
    assert may_compose(nested)


async def test_only_runs_that_may_compose_are_looked_up_when_they_end(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    await upgrade_schema(url)
    engine = make_engine(url)
    queue = InProcessQueue(lambda _id: _noop(), 1)
    store = CompositionStore(engine)
    bus = CompositionBus(InProcessBus(), store, queue, lambda: None)  # type: ignore[arg-type,return-value]
    solitary, other = uuid4(), uuid4()
    bus.solitary(solitary)
    now = datetime.now(UTC)
    await bus.publish([EventRecord(solitary, 2, "execution.completed", {}, now)])
    assert not bus._tasks  # no read was started for it
    await bus.publish([EventRecord(other, 2, "execution.completed", {}, now)])
    assert len(bus._tasks) == 1  # a run not known to be solitary is looked up
    await bus.settle()
    await engine.dispose()


async def _noop() -> None:
    return None
