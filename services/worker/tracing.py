"""Trace context through Celery: the publisher's span becomes the task's parent.

``before_task_publish`` writes the current context (W3C ``traceparent``) into the message
headers; ``task_prerun`` reads it back on the consumer and opens a ``celery.task <name>``
span for the task's run, which ``task_postrun`` ends. Both halves run in every process
that publishes or consumes (the API, the workers, the API's store-writes consumer).
"""

from __future__ import annotations

import threading
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun
from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, SpanKind

__all__ = ["install_celery_tracing"]

_installed = threading.Lock()
_done: list[bool] = []
_running: dict[str, tuple[Span, object]] = {}


class _RequestGetter(Getter[Any]):
    """Headers of a Celery message appear as attributes of ``task.request``."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        value = getattr(carrier, key, None)
        if value is None and isinstance(getattr(carrier, "headers", None), dict):
            value = carrier.headers.get(key)
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Any) -> list[str]:
        return [k for k in ("traceparent", "tracestate") if self.get(carrier, k)]


_GETTER = _RequestGetter()


def _inject(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        propagate.inject(headers)


def _start(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is None or task is None:
        return
    parent = propagate.extract(task.request, getter=_GETTER)
    span = trace.get_tracer("sieve.worker").start_span(
        f"celery.task {task.name}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={"celery.task_id": task_id, "celery.task_name": task.name},
    )
    token = context.attach(trace.set_span_in_context(span))
    _running[task_id] = (span, token)


def _end(task_id: str | None = None, state: str | None = None, **_: Any) -> None:
    entry = _running.pop(task_id or "", None)
    if entry is None:
        return
    span, token = entry
    if state:
        span.set_attribute("celery.state", state)
    span.end()
    context.detach(token)  # type: ignore[arg-type]


def install_celery_tracing() -> None:
    """Connect the publish/prerun/postrun handlers once per process."""
    with _installed:
        if _done:
            return
        before_task_publish.connect(_inject, weak=False)
        task_prerun.connect(_start, weak=False)
        task_postrun.connect(_end, weak=False)
        _done.append(True)
