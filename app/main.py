"""The FastAPI application: `app.main:app` (uvicorn) or `create_app(settings)`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import control, executions, health, runs, seed, streams, workflows
from app.api.errors import BodySizeLimit, install_error_handlers
from app.config import Settings, get_settings
from app.logs import configure_logging
from app.runtime import Runtime


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or Runtime(settings, role="api")
        await rt.start()
        app.state.runtime = rt
        try:
            yield
        finally:
            await rt.close()

    app = FastAPI(
        title="Turnout",
        version="0.1.0",
        description="Run workflows (DAGs of typed steps) immediately or on arq workers.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    for module in (runs, executions, control, streams, workflows, health, seed):
        app.include_router(module.router)
    return app


def _default_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings)
    return create_app(settings)


app = _default_app()
