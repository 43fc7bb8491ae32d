"""`GET /audit` (admin): the append-only audit log, newest first, with filters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import RepoDep
from app.api.errors import error_responses
from app.api.executions import Timestamp
from app.auth.keys import NAME
from app.store.audit import AuditFilter, AuditStore

router = APIRouter(tags=["audit"])

Text = Annotated[str | None, Query(max_length=300, pattern=r"^[^\x00]*$")]


@router.get(
    "/audit",
    summary="The audit log (admin): who did what to which target, when, from where",
    responses=error_responses(401, 403, 422),
)
async def list_audit(
    repo: RepoDep,
    actor: Text = None,
    action: Text = None,
    target: Text = None,
    namespace: Annotated[
        str | None,
        Query(pattern=NAME.pattern, description="one namespace (default: every one)"),
    ] = None,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        int | None, Query(ge=1, description="`nextCursor` of the page before")
    ] = None,
) -> dict[str, Any]:
    flt = AuditFilter(actor, action, target, namespace, since, until)
    items, next_cursor = await AuditStore(repo.engine).list(flt, limit=limit, before_id=cursor)
    return {"items": items, "nextCursor": next_cursor}
