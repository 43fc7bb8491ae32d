"""FastAPI dependencies: the runtime's parts, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Header, Request

from app.auth.keys import DEFAULT_NAMESPACE, SCOPES, Principal
from app.errors import ExecutionNotFound
from app.execution.control import ExecutionControl
from app.execution.manager import ExecutionManager
from app.runtime import Runtime
from app.store.namespaces import namespace_of
from app.store.repository import Repository


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_manager(request: Request) -> ExecutionManager:
    manager = get_runtime(request).manager
    assert manager is not None, "runtime not started"
    return manager


def get_control(request: Request) -> ExecutionControl:
    control = get_runtime(request).control
    assert control is not None, "runtime not started"
    return control


def get_repo(request: Request) -> Repository:
    return get_runtime(request).repo


def get_principal(request: Request) -> Principal:
    """Who asks (set by app.api.auth.Authenticator; open when it is not installed)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal or Principal("api", DEFAULT_NAMESPACE, frozenset(SCOPES), authenticated=False)


def get_actor(
    request: Request,
    x_actor: Annotated[
        str | None, Header(alias="X-Actor", max_length=200, description="a sub-label of who asks")
    ] = None,
) -> str:
    """What events record as `by`: the key's name (X-Actor only adds a label to it)."""
    return get_principal(request).actor


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ManagerDep = Annotated[ExecutionManager, Depends(get_manager)]
ControlDep = Annotated[ExecutionControl, Depends(get_control)]
RepoDep = Annotated[Repository, Depends(get_repo)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
ActorDep = Annotated[str, Depends(get_actor)]


def get_namespace(request: Request) -> str:
    """The namespace a request acts in: its key's (an admin key may choose another)."""
    return get_principal(request).namespace


NamespaceDep = Annotated[str, Depends(get_namespace)]


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
    found = await namespace_of(get_runtime(request).engine, execution_id)
    if found is not None and found != principal.namespace:
        raise ExecutionNotFound(f"no execution with id {execution_id}")
