"""OpenTelemetry traces, exported over OTLP/HTTP; off unless the standard `OTEL_*` variables
name an endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).

Spans: one per HTTP request of the API (`middleware.TraceMiddleware`), one per execution attempt
(`execution_span`) and one per step attempt (`step_span`). The trace context travels with
the execution: its `traceparent` is stored on the row at creation, so a worker's spans
continue the trace the API started; `http.request` steps send `traceparent` on."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

_PROPAGATOR = TraceContextTextMapPropagator()
_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


class _State:
    provider: Any = None
    tracer: trace.Tracer | None = None


_state = _State()


def enabled() -> bool:
    return _state.tracer is not None


def tracer() -> trace.Tracer | None:
    return _state.tracer


def extract(headers: dict[str, str]) -> Any:
    """The context an incoming `traceparent` names (the current one if none)."""
    return _PROPAGATOR.extract(headers)


def configure(role: str) -> None:
    """Start exporting if the environment asks for it (idempotent within a process)."""
    if _state.tracer is not None:
        return
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "none":
        return
    if not any(os.environ.get(name) for name in _ENDPOINT_VARS):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over these defaults.
    resource = Resource.create({"service.name": f"turnout-{role}"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _state.provider = provider
    _state.tracer = provider.get_tracer("turnout")
    log.info("tracing on", extra={"role": role})


def flush() -> None:
    if _state.provider is not None:
        _state.provider.force_flush()


def shutdown() -> None:
    """Flush and stop exporting (a later `configure` starts again)."""
    if _state.provider is not None:
        _state.provider.shutdown()
    _state.provider = None
    _state.tracer = None


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, if there is one."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def inject(headers: MutableMapping[str, str]) -> None:
    """Add `traceparent` (and `tracestate`) for the current span to outgoing headers."""
    _PROPAGATOR.inject(headers)


@contextmanager
def _span(
    name: str,
    attributes: dict[str, Any],
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    traceparent: str | None = None,
) -> Iterator[Span | None]:
    tracer = _state.tracer
    if tracer is None:
        yield None
        return
    parent = None
    current = trace.get_current_span().get_span_context()
    if traceparent and not current.is_valid:
        parent = _PROPAGATOR.extract({"traceparent": traceparent})
    attrs = {k: v for k, v in attributes.items() if v is not None}
    with tracer.start_as_current_span(
        name, context=parent, kind=kind, attributes=attrs, record_exception=False
    ) as span:
        yield span


@contextmanager
def execution_span(
    *,
    execution_id: str,
    workflow: str,
    version: str | None,
    attempt: int,
    mode: str,
    traceparent: str | None,
) -> Iterator[Span | None]:
    """One attempt of an execution; continues the stored trace when nothing is current."""
    attributes = {
        "turnout.execution.id": execution_id,
        "turnout.workflow.name": workflow,
        "turnout.workflow.version": version,
        "turnout.execution.attempt": attempt,
        "turnout.execution.mode": mode,
    }
    with _span(f"execution {workflow}", attributes, traceparent=traceparent) as span:
        yield span


def end_execution(span: Span | None, status: str | None, error: dict[str, Any] | None) -> None:
    if span is None:
        return
    span.set_attribute("turnout.execution.status", status or "lost")
    _set_error(span, error)


_NO_SPAN: AbstractContextManager[None] = nullcontext()  # reusable, and cheaper than _span


def step_span(
    *, execution_id: str, node_id: str, step_key: str, node_type: str, attempt: int
) -> AbstractContextManager[Span | None]:
    if _state.tracer is None:  # what _span would find: no span, at a fraction of the cost
        return _NO_SPAN
    attributes = {
        "turnout.execution.id": execution_id,
        "turnout.node.id": node_id,
        "turnout.step.key": step_key,
        "turnout.node.type": node_type,
        "turnout.step.attempt": attempt,
    }
    return _span(f"step {node_id}", attributes)


def end_step(span: Span | None, status: str, error: dict[str, Any] | None) -> None:
    if span is None:
        return
    span.set_attribute("turnout.step.status", status)
    _set_error(span, error)


def _set_error(span: Span, error: dict[str, Any] | None) -> None:
    if error:
        code = str(error.get("code", "error"))
        span.set_attribute("turnout.error.code", code)
        span.set_status(Status(StatusCode.ERROR, str(error.get("message", code))))
