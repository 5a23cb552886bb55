"""OpenTelemetry set-up for Sieve's processes (composition roots only).

Off unless ``SIEVE_OTEL_ENABLED=true``. Then each process gets a tracer provider that
batches spans to OTLP/HTTP; the endpoint, headers and batching come from OpenTelemetry's own
``OTEL_*`` variables (read by the SDK's exporter, not by Sieve). Stages open spans with
``tracing.span``; FastAPI opens the API's request spans itself (honouring a caller's
``traceparent``); this module owns the SDK and flushing.
"""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from core.settings import TelemetrySettings
from tracing import enable_spans

__all__ = ["setup_tracing", "shutdown_tracing"]

log = logging.getLogger("sieve.telemetry")


def setup_tracing(
    settings: TelemetrySettings, service_name: str, *, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Install a tracer provider for this process when tracing is enabled.

    Returns the provider it installed (to flush with ``shutdown_tracing``), or None: tracing
    is off, or the host application set one up already (``opentelemetry-instrument``, a
    test), which is kept: Sieve's spans go to it.
    """
    if not settings.enabled:
        return None
    enable_spans()
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return None
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("tracing on", extra={"service": service_name})
    return provider


def shutdown_tracing(provider: TracerProvider | None) -> None:
    """Flush and stop ``provider`` (what ``setup_tracing`` returned); None is a no-op."""
    if provider is not None:
        provider.shutdown()
