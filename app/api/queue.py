"""The queue at a glance: pending with positions, waiting, workers alive, recent throughput."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from fastapi import APIRouter

from app.api.deps import HeartbeatsDep, NamespaceDep, QueueDep, RepoDep
from app.api.schemas import execution_resource
from app.engine.state import utcnow
from app.engine.status import Status, StepStatus
from app.execution.heartbeats import WorkerHeartbeats
from app.execution.queue import ExecutionQueue
from app.store.records import ExecutionFilter
from app.store.repository import Repository

router = APIRouter(tags=["queue"])

LISTED = 50
THROUGHPUT_WINDOW_S = 600
THROUGHPUT_BUCKET_S = 10


async def queue_overview(
    repo: Repository,
    queue: ExecutionQueue,
    heartbeats: WorkerHeartbeats,
    namespace: str = "default",
) -> dict[str, Any]:
    """What `GET /queue` answers and the dashboard's queue page shows."""
    pending, _ = await repo.list_executions(
        ExecutionFilter(status=[Status.PENDING], namespace=namespace), limit=LISTED, cursor=None
    )
    waiting, _ = await repo.list_executions(
        ExecutionFilter(status=[Status.WAITING], namespace=namespace), limit=LISTED, cursor=None
    )
    positions = await asyncio.gather(*(queue.position(r.id) for r in pending))
    pending_items = [
        {**execution_resource(r, steps=False), "queuePosition": p}
        for r, p in zip(pending, positions, strict=True)
    ]
    pending_items.sort(key=lambda i: (i["queuePosition"] is None, i["queuePosition"] or 0))
    waiting_items = []
    for record in waiting:
        full = await repo.get_execution(record.id)
        item = execution_resource(record, steps=False)
        item["waitingOn"] = [s.node_id for s in full.steps if s.status == StepStatus.WAITING]
        waiting_items.append(item)
    since = utcnow() - timedelta(seconds=THROUGHPUT_WINDOW_S)
    counts = await repo.completed_per_bucket(since, THROUGHPUT_BUCKET_S)
    buckets = THROUGHPUT_WINDOW_S // THROUGHPUT_BUCKET_S
    return {
        "pending": pending_items,
        "waiting": waiting_items,
        "workers": [b.to_dict() for b in await heartbeats.alive()],
        "throughput": {
            "since": since.isoformat().replace("+00:00", "Z"),
            "bucketSeconds": THROUGHPUT_BUCKET_S,
            "perSecond": [round(counts.get(i, 0) / THROUGHPUT_BUCKET_S, 2) for i in range(buckets)],
        },
    }


@router.get("/queue", summary="The queue: pending (with positions), waiting, workers, throughput")
async def get_queue(
    repo: RepoDep, queue: QueueDep, heartbeats: HeartbeatsDep, namespace: NamespaceDep
) -> dict[str, Any]:
    return await queue_overview(repo, queue, heartbeats, namespace)
