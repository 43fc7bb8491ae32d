"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import CircuitsDep, RedisDep, RepoDep, SchemaDep
from app.api.resources import Health, Readiness
from app.circuits.breakers import refresh_circuit_gauges

router = APIRouter(tags=["health"])


async def require_schema(schema: SchemaDep) -> None:
    """Every route that reads or writes executions: 503 `schema_not_migrated` until the
    database is at this version's migration (instead of a 500 from a missing table)."""
    await schema.require()


@router.get("/healthz", summary="The process is alive", response_model=Health)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database answers at the current schema (and Redis, when configured)",
    response_model=None,
    responses={
        200: {"model": Readiness, "description": "ready"},
        503: {"model": Readiness, "description": "a dependency is down (see checks)"},
    },
)
async def readyz(repo: RepoDep, schema: SchemaDep, redis: RedisDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        async with asyncio.timeout(2):
            await repo.ping()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"down: {type(exc).__name__}"
    else:
        try:
            async with asyncio.timeout(2):
                checks["schema"] = (await schema.refresh()).describe()
        except Exception as exc:
            checks["schema"] = f"unknown: {type(exc).__name__}"
    if redis is not None:
        try:
            async with asyncio.timeout(2):
                await redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"down: {type(exc).__name__}"
    else:
        checks["redis"] = "not configured (in-process queue)"
    ready = all(v == "ok" or v.startswith("not configured") for v in checks.values())
    headers = None if ready else {"Retry-After": "2"}
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503, headers=headers)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(circuits: CircuitsDep) -> Response:
    await refresh_circuit_gauges(circuits)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
