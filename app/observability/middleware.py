"""The API's server span per HTTP request (kept apart: the engine imports `tracing`)."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability import tracing


class TraceMiddleware:
    """A server span per HTTP request of the API, continuing an incoming `traceparent`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = tracing.tracer()
        if tracer is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        parent = tracing.extract(headers)
        method = scope.get("method", "GET")
        path = scope.get("path", "")
        attrs = {"http.request.method": method, "url.path": path}
        token = otel_context.attach(parent)
        try:
            with tracer.start_as_current_span(
                f"{method} {path}", kind=SpanKind.SERVER, attributes=attrs
            ) as span:

                async def traced_send(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        span.set_attribute("http.response.status_code", message["status"])
                    await send(message)

                await self.app(scope, receive, traced_send)
        finally:
            otel_context.detach(token)
