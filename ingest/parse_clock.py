"""A per-document CPU budget for parsing, checked at safe points inside the parsers.

``parse_document`` opens one clock per document; parsers (and the text assembler they all
feed) call ``check_parse_clock()`` between units of work: pages, paragraphs, and every few
hundred PDF content operators. Past the budget the document fails ``too_expensive`` and the
rest of the batch goes on. CPU time of the parsing thread is measured, not wall time, so a
busy machine does not fail documents that would parse fine on a quiet one.

A check cannot interrupt a single call into a library (pypdf parses a page's whole content
stream before the first operator is visited), so a document may overrun by one such unit.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ingest.documents import FailureReason, ParseError

__all__ = ["check_parse_clock", "parse_clock"]

_deadline: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "sieve_parse_deadline", default=None
)


@contextmanager
def parse_clock(seconds: float) -> Iterator[None]:
    """Give the document parsed inside ``seconds`` of this thread's CPU time."""
    token = _deadline.set((time.thread_time() + seconds, seconds))
    try:
        yield
    finally:
        _deadline.reset(token)


def check_parse_clock() -> None:
    """Raise once the current document has used its budget (no clock open: no limit).

    Raises:
        ParseError: ``too_expensive``.
    """
    current = _deadline.get()
    if current is not None and time.thread_time() > current[0]:
        raise ParseError(
            FailureReason.TOO_EXPENSIVE,
            f"parsing used more than its budget of {current[1]:g} CPU seconds",
        )
