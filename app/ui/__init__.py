"""The dashboard: server-rendered pages at /ui/, live through the API's own streams."""

from __future__ import annotations

from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from app.api.deps import guard_execution

STATIC = Path(__file__).parent / "static"


def install_dashboard(app: FastAPI) -> None:
    """Mount the pages, their vendored assets, `GET /` -> `/ui/`, and `GET /queue` (the JSON
    twin of the queue page)."""
    from app.api import queue
    from app.ui import circuits, login, sinks
    from app.ui.pages import root, router
    from app.ui.schedules import router as schedules_router

    app.include_router(queue.router)
    app.include_router(router, dependencies=[Depends(guard_execution)])
    app.include_router(schedules_router)
    app.include_router(root)
    app.include_router(login.router)
    app.include_router(circuits.router)
    app.include_router(sinks.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
