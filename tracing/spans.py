"""Spans for Sieve's stages, on the OpenTelemetry API only (no SDK below ``services``).

``span(name, **attrs)`` is the one way Sieve opens a span. Until a composition root turns
spans on (``services.telemetry.setup_tracing`` calls ``enable_spans`` when
``SIEVE_OTEL_ENABLED`` is set) it returns a shared no-op context manager without touching
OpenTelemetry at all: a disabled span costs one attribute read. (Asking OpenTelemetry whether
a provider is set costs an ``os.environ`` lookup per call; see ``bench/tracing.py``.)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span

__all__ = ["AttrValue", "enable_spans", "span", "spans_enabled"]

AttrValue = str | bool | int | float | Sequence[str] | None

_TRACER = trace.get_tracer("sieve")
_OFF: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)


class _Switch:
    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = False


_SWITCH = _Switch()


def enable_spans(on: bool = True) -> None:
    """Record spans from now on in this process (the composition root decides, once)."""
    _SWITCH.on = on


def spans_enabled() -> bool:
    """True once ``enable_spans`` turned spans on."""
    return _SWITCH.on


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
    if not _SWITCH.on:
        return _OFF
    return _on(name, attrs)
