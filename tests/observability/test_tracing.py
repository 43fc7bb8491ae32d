"""Traces: the API's request and a worker's execution and steps form one trace, exported to a
real OTLP/HTTP receiver; `http.request` hands the trace on to the peer."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from tests.observability.peers import echo_peer
from tests.support.workers import api_process, worker_process


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An OTLP/HTTP endpoint (`POST /v1/traces`, protobuf); yields its URL and the spans."""
    spans: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                service = next(
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                )
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        spans.append(
                            {
                                "service": service,
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex(),
                                "attributes": {a.key: _value(a.value) for a in span.attributes},
                            }
                        )
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", spans
    finally:
        server.shutdown()
        server.server_close()


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


def wait_for(condition: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_api_and_worker_spans_form_one_trace_and_the_peer_gets_traceparent(
    settings: Settings, engine: AsyncEngine
) -> None:
    with otlp_receiver() as (endpoint, spans), echo_peer() as (peer, seen):
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"}
        with api_process(settings, **otel) as (_, api), worker_process(settings, **otel):
            workflow = {
                "name": "traced",
                "nodes": [
                    {"id": "prep", "type": "transform", "params": {"x": 1}},
                    {
                        "id": "call",
                        "type": "http.request",
                        "params": {"url": f"{peer}/echo", "method": "POST", "json": {"a": 1}},
                        "dependsOn": ["prep"],
                    },
                ],
            }
            body = {"workflow": workflow, "input": {}, "mode": "queued"}
            answer = httpx.post(f"{api}/workflow/run", json=body, timeout=30)
            assert answer.status_code == 202, answer.text
            execution_id = answer.json()["executionId"]

            def settled() -> bool:
                run = httpx.get(f"{api}/execution/{execution_id}", timeout=10).json()
                return bool(run["status"] == "completed")

            wait_for(settled)
            wait_for(lambda: any(s["name"] == "step call" for s in spans))
            wait_for(lambda: any(s["name"] == "POST /workflow/run" for s in spans))
    request = next(s for s in spans if s["name"] == "POST /workflow/run")
    execution = next(s for s in spans if s["name"] == "execution traced")
    step = next(s for s in spans if s["name"] == "step call")
    assert request["service"] == "turnout-api"
    assert execution["service"] == step["service"] == "turnout-worker"
    assert request["trace_id"] == execution["trace_id"] == step["trace_id"]
    assert execution["parent"] == request["span_id"]
    assert step["parent"] == execution["span_id"]
    assert execution["attributes"]["turnout.execution.id"] == execution_id
    assert execution["attributes"]["turnout.workflow.name"] == "traced"
    assert execution["attributes"]["turnout.execution.status"] == "completed"
    assert step["attributes"]["turnout.node.type"] == "http.request"
    assert step["attributes"]["turnout.step.status"] == "completed"
    assert step["attributes"]["turnout.step.attempt"] == 1
    traceparent = seen[0]["traceparent"]
    assert traceparent.split("-")[1:3] == [step["trace_id"], step["span_id"]]
