"""OpenTelemetry end to end: the API (in this process, spans to an in-memory exporter) and a
real Celery worker process (spans over real OTLP/HTTP to a receiver here) share one trace per
upload; the query's stages are children of its span."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.servers import serve_in_thread
from tests.services.stack import Stack, running_stack

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Rec:
    """A finished span, from either side."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    service: str


class _Gate(SpanProcessor):
    """Forwards to the exporter while this module runs; the provider outlives it."""

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner
        self.active = True

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.active:
            self.inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if self.active:
            self.inner.on_end(span)


class Receiver:
    """An OTLP/HTTP trace receiver: what the worker process exports."""

    def __init__(self) -> None:
        self.spans: list[Rec] = []

    async def traces(self, request: Request) -> Response:
        req = ExportTraceServiceRequest()
        req.ParseFromString(await request.body())
        for rs in req.resource_spans:
            attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    parent = sp.parent_span_id.hex() or None
                    self.spans.append(
                        Rec(
                            sp.name,
                            sp.trace_id.hex(),
                            sp.span_id.hex(),
                            parent,
                            attrs["service.name"],
                        )
                    )
        return Response(
            ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf"
        )


def _api_spans(exporter: InMemorySpanExporter) -> list[Rec]:
    out = []
    for s in exporter.get_finished_spans():
        assert s.context is not None
        out.append(
            Rec(
                s.name,
                f"{s.context.trace_id:032x}",
                f"{s.context.span_id:016x}",
                f"{s.parent.span_id:016x}" if s.parent else None,
                str(s.resource.attributes.get("service.name")),
            )
        )
    return out


@pytest.fixture(scope="module")
def traced(
    redis_url: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, InMemorySpanExporter, Receiver]]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": "sieve-api"}))
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    gate = _Gate(SimpleSpanProcessor(exporter))
    provider.add_span_processor(gate)
    receiver = Receiver()
    app = Starlette(routes=[Route("/v1/traces", receiver.traces, methods=["POST"])])
    try:
        with (
            serve_in_thread(app, lifespan="off") as otlp,
            running_stack(
                redis_url,
                hub_url,
                tmp_path_factory.mktemp("traced"),
                SIEVE_OTEL_ENABLED="true",
                OTEL_EXPORTER_OTLP_ENDPOINT=otlp,
                OTEL_BSP_SCHEDULE_DELAY="100",
            ) as stack,
        ):
            yield stack, exporter, receiver
    finally:
        gate.active = False
        exporter.clear()


def _wait_for(receiver: Receiver, names: set[str], timeout_s: float = 30) -> list[Rec]:
    deadline = time.monotonic() + timeout_s
    while not names <= {s.name for s in receiver.spans}:
        assert time.monotonic() < deadline, {s.name for s in receiver.spans}
        time.sleep(0.1)
    return receiver.spans


def _one(spans: list[Rec], name: str) -> Rec:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def _ancestors(span: Rec, by_id: dict[str, Rec]) -> list[str]:
    out, cur = [], span
    while cur.parent_id is not None and cur.parent_id in by_id:
        cur = by_id[cur.parent_id]
        out.append(cur.name)
    return out


def test_an_upload_is_one_trace_from_the_api_through_the_worker_and_back(
    traced: tuple[Stack, InMemorySpanExporter, Receiver],
) -> None:
    stack, exporter, receiver = traced
    with stack.client() as c:
        assert c.post("/v1/collections", json={"name": "traced"}).status_code == 201
        docs = [{"id": "sun", "text": "Plants turn sunlight into sugar by photosynthesis."}]
        job = c.post("/v1/collections/traced/documents", json={"documents": docs}).json()
        assert stack.wait_job(c, job["job_id"])["counts"] == {"indexed": 1}
    worker = _wait_for(
        receiver, {"celery.task sieve.ingest", "ingest.parse", "ingest.chunk", "ingest.embed"}
    )
    deadline = time.monotonic() + 10
    while not any(s.name == "celery.task sieve.write" for s in _api_spans(exporter)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    api = _api_spans(exporter)

    upload = _one(api, "POST /v1/collections/{name}/documents")
    task = _one(worker, "celery.task sieve.ingest")
    assert task.service == "sieve-worker"
    assert (task.trace_id, task.parent_id) == (upload.trace_id, upload.span_id)
    by_id = {s.span_id: s for s in [*api, *worker]}
    for step in ("ingest.parse", "ingest.chunk", "ingest.embed"):
        span = _one(worker, step)
        assert span.trace_id == upload.trace_id
        assert "celery.task sieve.ingest" in _ancestors(span, by_id), step
    # The worker hands the computed points to the store owner (this API process): the
    # store-write task continues the same trace, as a child of a worker span.
    writes = [s for s in api if s.name == "celery.task sieve.write"]
    assert writes
    assert all(w.trace_id == upload.trace_id for w in writes)
    assert all(w.parent_id in {s.span_id for s in worker} for w in writes)


def test_a_query_has_one_span_per_stage_under_the_request(
    traced: tuple[Stack, InMemorySpanExporter, Receiver],
) -> None:
    stack, exporter, _ = traced
    exporter.clear()
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with stack.client() as c:
        c.post("/v1/collections", json={"name": "traced-q"})
        job = c.post(
            "/v1/collections/traced-q/documents",
            json={"documents": [{"id": "a", "text": "Espresso is coffee brewed under pressure."}]},
        ).json()
        stack.wait_job(c, job["job_id"])
        exporter.clear()
        resp = c.post(
            "/v1/collections/traced-q/query",
            json={"query": "coffee under pressure"},
            headers={"traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"},
        )
        assert resp.status_code == 200
    api = _api_spans(exporter)
    request = _one(api, "POST /v1/collections/{name}/query")
    assert request.trace_id == caller_trace  # the caller's trace continues through the API
    assert request.parent_id == "00f067aa0ba902b7"
    query = _one(api, "query")
    assert query.parent_id == request.span_id
    stages = {s.name: s for s in api if s.parent_id == query.span_id}
    assert set(stages) == {"query.embed", "query.recall", "query.rerank", "query.cutoff"}
