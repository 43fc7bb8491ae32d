"""FastAPI dependencies: the runtime's parts, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.execution.control import ExecutionControl
from app.execution.manager import ExecutionManager
from app.runtime import Runtime
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


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ManagerDep = Annotated[ExecutionManager, Depends(get_manager)]
ControlDep = Annotated[ExecutionControl, Depends(get_control)]
RepoDep = Annotated[Repository, Depends(get_repo)]
