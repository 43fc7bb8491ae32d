"""The FastAPI application: `app.main:app` (uvicorn) or `create_app(settings)`."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import FrameType

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api import (
    analytics,
    audit,
    circuits,
    control,
    events,
    executions,
    export,
    health,
    node_types,
    runs,
    schedules,
    seed,
    streams,
    subscriptions,
    workflows,
)
from app.api.auth import Authenticator
from app.api.deps import guard_execution
from app.api.docs import install_docs
from app.api.errors import BodySizeLimit, install_error_handlers
from app.config import Settings, get_settings
from app.logs import configure_logging
from app.observability.middleware import TraceMiddleware
from app.runtime import Runtime, build_runtime, tune_collector
from app.store.schema import StartupError
from app.ui import install_dashboard

CORS_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "Last-Event-ID",
    "X-Actor",
    "X-CSRF-Token",
    "X-Turnout-Namespace",
]


def create_app(
    settings: Settings | None = None, *, runtime: Runtime | None = None, tune_gc: bool = False
) -> FastAPI:
    """`tune_gc`: the process is this app's own (uvicorn's `app.main:app`), so its garbage
    collector is tuned once started (see `tune_collector`)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or build_runtime(settings, role="api")
        try:
            await rt.start()
        except StartupError as exc:
            app.state.startup_error = str(exc)
            await rt.close()
            raise
        app.state.runtime = rt
        if tune_gc:
            tune_collector()
        try:
            with drain_on_exit_signals(rt):
                yield
        finally:
            await rt.close()

    app = FastAPI(
        title="Turnout",
        version="0.1.0",
        description="Run workflows (DAGs of typed steps) immediately or on arq workers.",
        lifespan=lifespan,
        docs_url=None,  # served from vendored assets by app.api.docs
        redoc_url=None,
        # A body without a Content-Type is read as JSON (a non-JSON type is a 415).
        strict_content_type=False,
    )
    install_error_handlers(app)
    app.add_middleware(Authenticator, settings=settings)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(StartupFailure)
    if settings.cors_origins:  # outermost: preflights and error answers carry the headers too
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=CORS_HEADERS,
            expose_headers=["Retry-After", "Location"],
            max_age=600,
        )
    schema = [Depends(health.require_schema), Depends(guard_execution)]
    app.add_middleware(TraceMiddleware)
    routers = (
        runs,
        executions,
        control,
        streams,
        workflows,
        seed,
        analytics,
        export,
        audit,
        schedules,
        events,
        subscriptions,
    )
    for module in routers:
        app.include_router(module.router, dependencies=schema)
    app.include_router(circuits.router)
    app.include_router(health.router)
    app.include_router(node_types.router)
    install_dashboard(app)
    install_docs(app)
    return app


class StartupFailure:
    """A known startup failure is reported as its one-line message (uvicorn logs it and
    exits), not as a traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def short_send(message: Message) -> None:
            error = getattr(scope["app"].state, "startup_error", None)
            if message["type"] == "lifespan.startup.failed" and error:
                message = {**message, "message": f"cannot start: {error}"}
            await send(message)

        await self.app(scope, receive, short_send)


@contextmanager
def drain_on_exit_signals(runtime: Runtime) -> Iterator[None]:
    """SIGTERM/SIGINT: hand immediate runs over to the queue at once, then let uvicorn stop.

    uvicorn waits for open requests before its shutdown, and an immediate run may hold its
    request for the whole budget: draining first lets those requests answer 202 (the run is
    checkpointed and queued), so shutdown takes the grace period, not the budget."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals only reach the main thread (tests serve from a thread)
        return
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(runtime.shutdown_runs)
        chained = previous[signal.Signals(sig)]
        if callable(chained):
            chained(sig, frame)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, original in previous.items():
            signal.signal(sig, original)


def _default_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings)
    return create_app(settings, tune_gc=True)


app = _default_app()
