"""Real uvicorn servers on free 127.0.0.1 ports, for tests that need a live HTTP peer."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import uvicorn


@contextmanager
def run_server(
    app: Callable[..., Any], *, startup_timeout: float = 15.0, **config: Any
) -> Iterator[str]:
    """Serve the ASGI `app` in a background thread (own event loop), yielding its base URL.

    `config` goes to `uvicorn.Config` (e.g. `lifespan="off"`). The server stops on exit.
    """
    # Binding here, not in uvicorn, gives the port without a race against other tests.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options: dict[str, Any] = {
        "log_config": None,  # leave the test run's logging alone
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": 5,
    }
    server = uvicorn.Server(uvicorn.Config(app, **(options | config)))

    def serve() -> None:
        # uvicorn calls sys.exit when the app's startup fails: not an error of the thread.
        with contextlib.suppress(SystemExit):
            server.run(sockets=[sock])

    thread = threading.Thread(target=serve, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn exited during startup (its error is logged above)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {startup_timeout} s")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():  # a request that ignores the graceful shutdown
            server.force_exit = True
            thread.join(timeout=5)
        sock.close()


@asynccontextmanager
async def run_server_async(app: Callable[..., Any], **config: Any) -> AsyncIterator[str]:
    """`run_server` for async tests: starting and stopping do not block the test's loop, so
    its open client connections (an SSE stream) can close while the server drains."""
    manager = run_server(app, **config)
    url = await asyncio.to_thread(manager.__enter__)
    try:
        yield url
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)
