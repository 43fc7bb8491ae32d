"""FastAPI dependencies: the runtime's parts, as `Annotated` aliases.

Routers ask for the parts they use (manager, control, repository, queue, bus, ...); only this
module knows they live on the process's `Runtime`."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from arq.connections import ArqRedis
from fastapi import Depends, Header, Request

from app.auth.keys import DEFAULT_NAMESPACE, SCOPES, Principal
from app.circuits.breakers import CircuitBreakers
from app.config import Settings
from app.errors import ExecutionNotFound
from app.events.bus import EventBus
from app.execution.heartbeats import WorkerHeartbeats
from app.execution.manager import ExecutionManager
from app.execution.queue import ExecutionQueue
from app.execution.steering import ExecutionControl
from app.nodes.registry import NodeRegistry
from app.runtime import Runtime
from app.sinks.parts import SinkParts
from app.store.namespaces import namespace_of
from app.store.repository import Repository
from app.store.schema import SchemaCheck

# Every dependency is a coroutine function: FastAPI runs a plain `def` one in a thread pool,
# two thread hops per dependency per request for what is an attribute read.


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_manager(request: Request) -> ExecutionManager:
    return _runtime(request).manager


async def get_control(request: Request) -> ExecutionControl:
    return _runtime(request).control


async def get_repo(request: Request) -> Repository:
    return _runtime(request).repo


async def get_queue(request: Request) -> ExecutionQueue:
    return _runtime(request).queue


async def get_bus(request: Request) -> EventBus:
    return _runtime(request).bus


async def get_settings(request: Request) -> Settings:
    return _runtime(request).settings


async def get_registry(request: Request) -> NodeRegistry:
    return _runtime(request).registry


async def get_schema(request: Request) -> SchemaCheck:
    return _runtime(request).schema


async def get_heartbeats(request: Request) -> WorkerHeartbeats:
    return _runtime(request).heartbeats


async def get_redis(request: Request) -> ArqRedis | None:
    return _runtime(request).redis


def get_circuits(request: Request) -> CircuitBreakers:
    return _runtime(request).circuits


def get_sinks(request: Request) -> SinkParts:
    return _runtime(request).sinks


ManagerDep = Annotated[ExecutionManager, Depends(get_manager)]
ControlDep = Annotated[ExecutionControl, Depends(get_control)]
RepoDep = Annotated[Repository, Depends(get_repo)]
QueueDep = Annotated[ExecutionQueue, Depends(get_queue)]
BusDep = Annotated[EventBus, Depends(get_bus)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[NodeRegistry, Depends(get_registry)]
SchemaDep = Annotated[SchemaCheck, Depends(get_schema)]
HeartbeatsDep = Annotated[WorkerHeartbeats, Depends(get_heartbeats)]
RedisDep = Annotated[ArqRedis | None, Depends(get_redis)]
CircuitsDep = Annotated[CircuitBreakers, Depends(get_circuits)]
SinksDep = Annotated[SinkParts, Depends(get_sinks)]


def get_principal(request: Request) -> Principal:
    """Who asks (set by app.api.auth.Authenticator; open when it is not installed)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal or Principal("api", DEFAULT_NAMESPACE, frozenset(SCOPES), authenticated=False)


async def get_actor(
    request: Request,
    x_actor: Annotated[
        str | None, Header(alias="X-Actor", max_length=200, description="a sub-label of who asks")
    ] = None,
) -> str:
    """What events record as `by`: the key's name (X-Actor only adds a label to it)."""
    return get_principal(request).actor


async def _principal_dep(request: Request) -> Principal:
    return get_principal(request)


PrincipalDep = Annotated[Principal, Depends(_principal_dep)]
ActorDep = Annotated[str, Depends(get_actor)]


def get_namespace(request: Request) -> str:
    """The namespace a request acts in: its key's (an admin key may choose another)."""
    return get_principal(request).namespace


async def _namespace_dep(request: Request) -> str:
    return get_namespace(request)


NamespaceDep = Annotated[str, Depends(_namespace_dep)]


async def guard_execution(request: Request) -> None:
    """Another namespace's execution is a 404, as if it did not exist (nothing leaks)."""
    raw = request.path_params.get("execution_id")
    principal = get_principal(request)
    if raw is None or principal.is_admin:
        return
    try:
        execution_id = UUID(str(raw))
    except ValueError:
        return  # the route's own validation answers
    found = await namespace_of(_runtime(request).repo.engine, execution_id)
    if found is not None and found != principal.namespace:
        raise ExecutionNotFound(f"no execution with id {execution_id}")
