"""Spans for Sieve's stages, on the OpenTelemetry API only (no SDK below ``services``).

``span(name, **attrs)`` is the one way Sieve opens a span. With no tracer provider set up
(``SIEVE_OTEL_ENABLED`` off, the default) it returns a shared no-op context manager without
touching OpenTelemetry's context, so a disabled trace costs one ``isinstance`` check.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span

__all__ = ["AttrValue", "span"]

AttrValue = str | bool | int | float | Sequence[str] | None

_TRACER = trace.get_tracer("sieve")
_OFF: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)


def _attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    # OpenTelemetry refuses None (and warns on other types); keep what it can carry.
    return {
        key: list(value) if isinstance(value, list | tuple) else value
        for key, value in attrs.items()
        if value is not None
    }


@contextmanager
def _on(name: str, attrs: dict[str, Any]) -> Iterator[Span]:
    with _TRACER.start_as_current_span(name, attributes=_attributes(attrs)) as current:
        yield current


def span(name: str, **attrs: AttrValue) -> AbstractContextManager[Span]:
    """A child span of the current one, named ``name``, with ``attrs`` (None values dropped).

    Exceptions raised inside are recorded on the span and re-raised. Use the yielded span
    to add what is known only at the end: ``with span("x") as s: ...; s.set_attribute(...)``.
    """
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return _OFF
    return _on(name, attrs)
