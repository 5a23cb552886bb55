"""The one error tree every stage raises; services map it to HTTP in one place."""

from __future__ import annotations

__all__ = [
    "Conflict",
    "InvalidInput",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "QuotaExceeded",
    "SieveError",
    "StoreLocked",
    "TooManyRequests",
    "Unauthorized",
    "UpstreamRejected",
    "UpstreamUnavailable",
]


class SieveError(Exception):
    """Base of every error Sieve raises on purpose.

    ``code`` is a stable, machine-readable string that reaches API clients;
    the message is for people and never contains secrets or stack traces.
    """

    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InvalidInput(SieveError):
    """The caller sent something we cannot accept (bad field, bad file, bad filter).

    ``field`` names the offending field of the request body when there is one
    (``filter.metadata.year``, ``metadata.score``); the API's error body carries it.
    """

    code = "invalid_input"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class PayloadTooLarge(InvalidInput):
    """A body, file, archive or text is over a configured limit."""

    code = "payload_too_large"


class Unauthorized(SieveError):
    """Missing or wrong credentials."""

    code = "unauthorized"


class NotFound(SieveError):
    """The named collection, document, job or model does not exist (for this tenant)."""

    code = "not_found"


class Conflict(SieveError):
    """The request contradicts current state (e.g. the collection already exists)."""

    code = "conflict"


class QuotaExceeded(SieveError):
    """A tenant's quota (collections, documents, bytes, feedback, uploads in flight) is used up.

    ``quota`` names it, ``limit`` is its setting, ``current`` the usage the request found.
    A rate-like quota (uploads in flight) frees itself and carries ``retry_after``; a
    capacity quota only frees when the tenant deletes something (no ``retry_after``).
    """

    code = "quota_exceeded"

    def __init__(
        self,
        message: str,
        *,
        quota: str,
        limit: int,
        current: int,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.quota = quota
        self.limit = limit
        self.current = current
        self.retry_after = retry_after


class StoreLocked(Conflict):
    """The embedded store's data directory is held by another process."""

    code = "store_locked"


class UpstreamUnavailable(SieveError):
    """A peer (model hub, Qdrant, Redis) timed out, rate-limited us or failed with 5xx.

    Retryable. ``retry_after`` is the peer's hint in seconds, when it gave one.
    """

    code = "upstream_unavailable"

    def __init__(
        self, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Overloaded(SieveError):
    """This process is at a named capacity bound (e.g. its CPU pool is full): retry later.

    ``retry_after`` is the hint in seconds the client gets as ``Retry-After``.
    """

    code = "overloaded"

    def __init__(self, message: str, *, code: str | None = None, retry_after: float = 1.0) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class UpstreamRejected(SieveError):
    """A peer refused the request with a 4xx other than 429. Not retryable."""

    code = "upstream_rejected"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status


class TooManyRequests(SieveError):
    """The caller is at a per-tenant bound that frees itself (e.g. concurrent waiters):
    retry after ``retry_after`` seconds (the client gets it as ``Retry-After``)."""

    code = "too_many_requests"

    def __init__(self, message: str, *, code: str | None = None, retry_after: float = 1.0) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
