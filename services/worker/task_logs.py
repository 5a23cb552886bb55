"""One JSON line when a task starts, ends, fails or retries, with its job and document ids.

Connected to Celery's task signals in the worker's composition root, so every pool (prefork
children included) reports what it runs. Only ids are logged, never the task's arguments
themselves: a store write carries vectors and text.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import time
from collections.abc import Mapping
from typing import Any

from celery.signals import task_failure, task_postrun, task_prerun, task_retry

from core.logs import bind_log_context, reset_log_context

__all__ = ["connect_task_logs", "task_ids"]

log = logging.getLogger("sieve.worker.tasks")

# Fields worth a log line, found as task parameters or keys of a dict argument.
_ID_FIELDS = ("job_id", "tenant", "collection", "document_id", "op")
# Lists of ids, or of the typed messages' ``DocVersion``/``WrittenDocument`` (only ``id``
# is read: a write carries its points, which never reach a log line).
_ID_LISTS = ("doc_ids", "document_ids", "docs")
_MAX_IDS = 50
_MAX_CHARS = 256

_open: dict[str, tuple[float, contextvars.Token[dict[str, Any] | None]]] = {}


def _short(value: object) -> str | None:
    return value[:_MAX_CHARS] if isinstance(value, str) else None


def _doc_id(value: object) -> str | None:
    """A document id given as a string, or as a message's ``{"id": ..., "version": ...}``."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return _short(value)


def _collect(into: dict[str, Any], name: str, value: object, depth: int = 0) -> None:
    if name in _ID_FIELDS and (text := _short(value)) is not None:
        into.setdefault(name, text)
    elif name in _ID_LISTS and isinstance(value, list | tuple):
        ids = [i for i in map(_doc_id, value) if i is not None]
        into["document_ids"] = ids[:_MAX_IDS]
        into["document_count"] = len(ids)
    elif name == "doc" and (doc_id := _doc_id(value)) is not None:
        into.setdefault("document_id", doc_id)
    elif isinstance(value, Mapping) and depth == 0:
        for key, inner in value.items():
            if isinstance(key, str):
                _collect(into, key, inner, depth + 1)


def task_ids(task: Any, args: Any, kwargs: Any) -> dict[str, Any]:
    """The ids in a task's arguments (by parameter name, or keys of a dict argument)."""
    found: dict[str, Any] = {}
    try:
        bound = inspect.signature(task.run).bind_partial(*(args or ()), **(kwargs or {}))
        named: Mapping[str, object] = bound.arguments
    except (TypeError, ValueError):
        named = {f"arg{n}": a for n, a in enumerate(args or ())} | dict(kwargs or {})
    for name, value in named.items():
        _collect(found, name, value)
    return found


def _name(task: Any) -> str:
    return str(getattr(task, "name", "?"))


def _on_prerun(task_id: str, task: Any, args: Any = None, kwargs: Any = None, **_: Any) -> None:
    ids = task_ids(task, args, kwargs)
    token = bind_log_context(task_id=task_id, task=_name(task), **ids)
    _open[task_id] = (time.perf_counter(), token)
    log.info("task started")


def _on_postrun(task_id: str, state: str | None = None, **_: Any) -> None:
    started, token = _open.pop(task_id, (None, None))
    elapsed = None if started is None else round((time.perf_counter() - started) * 1000, 1)
    log.info("task finished", extra={"state": state, "duration_ms": elapsed})
    if token is not None:
        reset_log_context(token)


def _on_failure(
    task_id: str, exception: BaseException | None = None, sender: Any = None, **_: Any
) -> None:
    log.error(
        "task failed",
        extra={"task_id": task_id, "task": _name(sender), "error": type(exception).__name__},
        exc_info=(type(exception), exception, exception.__traceback__) if exception else None,
    )


def _on_retry(request: Any = None, reason: object = None, sender: Any = None, **_: Any) -> None:
    log.warning(
        "task retrying",
        extra={
            "task_id": getattr(request, "id", None),
            "task": _name(sender),
            "reason": type(reason).__name__ if isinstance(reason, BaseException) else None,
        },
    )


def connect_task_logs() -> None:
    """Connect the handlers (idempotent: Celery keeps one per ``dispatch_uid``)."""
    task_prerun.connect(_on_prerun, weak=False, dispatch_uid="sieve.task_logs.prerun")
    task_postrun.connect(_on_postrun, weak=False, dispatch_uid="sieve.task_logs.postrun")
    task_failure.connect(_on_failure, weak=False, dispatch_uid="sieve.task_logs.failure")
    task_retry.connect(_on_retry, weak=False, dispatch_uid="sieve.task_logs.retry")
