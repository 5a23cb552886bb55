"""Structured logging: one JSON object per line, with request and job ids from context."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

__all__ = [
    "JsonFormatter",
    "bind_log_context",
    "configure_logging",
    "log_context",
    "reset_log_context",
]

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "sieve_log_context", default=None
)

# Attributes every LogRecord has; anything else came in through ``extra=`` and is a field.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (e.g. ``request_id``, ``job_id``) to every record logged inside."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def bind_log_context(**fields: Any) -> contextvars.Token[dict[str, Any] | None]:
    """Like ``log_context`` for code that opens and closes in two callbacks (task signals)."""
    return _context.set({**(_context.get() or {}), **fields})


def reset_log_context(token: contextvars.Token[dict[str, Any] | None]) -> None:
    """Undo a ``bind_log_context``."""
    _context.reset(token)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line: time, level, logger, event, then fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON object on one line."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        out.update(_context.get() or {})
        out.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(
    level: str = "INFO", *, json_format: bool = True, stream: IO[str] | None = None
) -> None:
    """Configure the root logger once, for a process's composition root.

    ``stream`` defaults to ``sys.stderr``; a Celery child passes the real ``sys.__stderr__``
    (Celery may have swapped ``sys.stderr`` for a proxy that feeds the logging system, which
    drops records that would loop back into it).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # One line per HTTP call to the hub is noise at INFO; failures are logged by our clients.
    # Celery's "task received" line prints the arguments: store writes carry vectors.
    for chatty in ("httpx", "httpcore", "celery.worker.strategy"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
