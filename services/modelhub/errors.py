"""The hub's errors and its one OpenAI-style error body (model-api.md, "Errors").

Routes raise ``core.errors`` types (or the few hub-only ones below); the handlers in
``app.py`` and the guard middleware turn every one of them into the same body.
"""

from __future__ import annotations

from typing import Any

from core.errors import InvalidInput, NotFound, PayloadTooLarge, SieveError, Unauthorized

__all__ = [
    "InvalidField",
    "ModelIntegrityError",
    "Overloaded",
    "RateLimited",
    "UnknownModel",
    "error_body",
    "status_of",
]


class InvalidField(InvalidInput):
    """A 400 that names the offending request field (``param``), e.g. ``documents[3]``."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class UnknownModel(NotFound):
    """The request names a model the hub does not serve (404, ``param`` = ``model``)."""

    param = "model"


class RateLimited(SieveError):
    """The caller is over the hub's configured request rate (429 + ``Retry-After``)."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(SieveError):
    """The inference queue is full or the models are not loaded (503 + ``Retry-After``)."""

    code = "overloaded"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelIntegrityError(SieveError):
    """A model file is missing or its sha256 differs from the pinned one (refuse to start)."""

    code = "model_integrity"


# Most specific first: PayloadTooLarge is an InvalidInput.
_STATUS: tuple[tuple[type[SieveError], int, str], ...] = (
    (PayloadTooLarge, 413, "request_too_large"),
    (InvalidInput, 400, "invalid_request_error"),
    (Unauthorized, 401, "authentication_error"),
    (NotFound, 404, "not_found_error"),
    (RateLimited, 429, "rate_limit_error"),
    (Overloaded, 503, "service_unavailable"),
)


def status_of(exc: SieveError) -> tuple[int, str]:
    """Return the HTTP status and OpenAI error ``type`` for a Sieve error (500 if unmapped)."""
    for cls, status, kind in _STATUS:
        if isinstance(exc, cls):
            return status, kind
    return 500, "server_error"


def error_body(status: int, kind: str, message: str, param: str | None = None) -> dict[str, Any]:
    """Return the one error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}
