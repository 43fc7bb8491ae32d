"""`GET /circuits` (read): the namespace's circuit breakers; `POST /circuits/{host}/reset`
(admin, audited): close a host's breakers by hand."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import Field

from app.api.deps import CircuitsDep, NamespaceDep
from app.api.errors import error_responses
from app.api.resources import Resource
from app.errors import CircuitNotFound

router = APIRouter(tags=["circuits"])

HOST = r"^[A-Za-z0-9._\-\[\]:]+$"


class CircuitSettings(Resource):
    failures: int
    window_ms: int = Field(alias="windowMs")
    cooldown_ms: int = Field(alias="cooldownMs")


class Circuit(Resource):
    """One breaker: a target `host:port`, with the service's thresholds or a node's own."""

    host: str = Field(description="`host:port` of the target")
    name: str = Field(description="the host, plus `|thresholds` when a node set its own")
    namespace: str
    state: str = Field(description="`closed`, `half_open` or `open`")
    failures: int = Field(description="failures counted within the window")
    opened_at: str | None = Field(alias="openedAt")
    next_probe_at: str | None = Field(
        alias="nextProbeAt", description="when an open breaker lets its one probe through"
    )
    opens: int = Field(description="times it opened")
    last_used_at: str | None = Field(alias="lastUsedAt")
    settings: CircuitSettings


class CircuitList(Resource):
    items: list[Circuit]
    shared: bool = Field(description="true: held in Redis for every process; false: this one")


class CircuitReset(Resource):
    reset: list[str] = Field(description="the breakers closed (names)")


@router.get(
    "/circuits",
    summary="The namespace's circuit breakers of http.request, one per target host",
    response_model=None,
    responses={200: {"model": CircuitList}, **error_responses(401, 403)},
)
async def list_circuits(circuits: CircuitsDep, namespace: NamespaceDep) -> dict[str, Any]:
    views = await circuits.views(namespace)
    return {"items": [v.to_dict() for v in views], "shared": circuits.store.shared}


@router.post(
    "/circuits/{host}/reset",
    summary="Close a host's circuit breakers (admin); `host` or `host:port`",
    response_model=None,
    responses={200: {"model": CircuitReset}, **error_responses(401, 403, 404, 422)},
)
async def reset_circuit(
    circuits: CircuitsDep,
    namespace: NamespaceDep,
    host: Annotated[str, Path(max_length=300, pattern=HOST)],
) -> dict[str, Any]:
    names = await circuits.reset(namespace, host.lower())
    if not names:
        raise CircuitNotFound(f"no circuit breaker for {host} in namespace '{namespace}'")
    return {"reset": names}
