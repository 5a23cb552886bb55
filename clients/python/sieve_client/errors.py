"""One exception tree for every way a call can fail; the API's one error body becomes one of
these, with its ``code``, ``message`` and ``request_id``."""

from __future__ import annotations

from typing import Any

import httpx

from sieve_client.retry import parse_retry_after

__all__ = [
    "AuthenticationError",
    "BadResponseError",
    "ConflictError",
    "ConnectionFailed",
    "InvalidRequestError",
    "JobWaitTimeout",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "RequestTimeoutError",
    "ServerError",
    "ServiceUnavailableError",
    "SieveAPIError",
    "SieveClientError",
    "UpstreamError",
    "ValidationFailedError",
    "error_from_response",
    "error_from_transport",
]


class SieveClientError(Exception):
    """Base of every error the client raises."""

    def __init__(
        self,
        message: str,
        code: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        details: Any = None,
        field: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.request_id = request_id
        self.details = details
        # The request field at fault, when the API named one (``filter.metadata.year``).
        self.field = field
        # Seconds the server asked to wait before another try (``Retry-After``), if it did.
        self.retry_after = retry_after

    def __str__(self) -> str:
        rid = f", request {self.request_id}" if self.request_id else ""
        return f"{self.message} ({self.code}{rid})"


class SieveAPIError(SieveClientError):
    """The API answered with an error status."""


class InvalidRequestError(SieveAPIError):
    """400: the request was refused (a bad filter, top_n over top_k, an unknown model, ...)."""


class ValidationFailedError(InvalidRequestError):
    """422: the body failed the API's schema; ``details`` lists the fields."""


class PayloadTooLargeError(InvalidRequestError):
    """413: the upload is over the server's limit."""


class AuthenticationError(SieveAPIError):
    """401: no API key, or one the server does not know."""


class NotFoundError(SieveAPIError):
    """404: no such collection, document or job (for this tenant)."""


class ConflictError(SieveAPIError):
    """409: the collection exists already, or the store is locked."""


class RateLimitedError(SieveAPIError):
    """429, after the retries: slow down."""


class UpstreamError(SieveAPIError):
    """502: a peer of the API (the model hub) refused the request."""


class ServiceUnavailableError(SieveAPIError):
    """503, after the retries: the hub or the store is unavailable, or the rerank failed with
    ``on_rerank_error="fail"``."""


class ServerError(SieveAPIError):
    """Any other 5xx."""


class ConnectionFailed(SieveClientError):
    """The API could not be reached."""


class RequestTimeoutError(SieveClientError):
    """The API did not answer within the timeout."""


class BadResponseError(SieveClientError):
    """The answer was not what a Sieve API sends (a proxy in between, or another server)."""


class JobWaitTimeout(SieveClientError):
    """``wait_job`` gave up before the job finished; ``job`` is its last state."""

    def __init__(self, message: str, job: Any) -> None:
        super().__init__(message, "job_wait_timeout")
        self.job = job


_BY_STATUS: dict[int, type[SieveAPIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationFailedError,
    429: RateLimitedError,
    502: UpstreamError,
    503: ServiceUnavailableError,
}


def _error_class(status: int) -> type[SieveAPIError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else InvalidRequestError


def error_from_response(resp: httpx.Response) -> SieveAPIError:
    """Map an error response (Sieve's one error body, or anything else) to an exception."""
    cls = _error_class(resp.status_code)
    retry_after = parse_retry_after(resp.headers.get("retry-after"))
    try:
        body = resp.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        request_id, field = err.get("request_id"), err.get("field")
        return cls(
            err["message"],
            str(err.get("code") or f"http_{resp.status_code}"),
            status=resp.status_code,
            request_id=request_id if isinstance(request_id, str) else None,
            details=err.get("details"),
            field=field if isinstance(field, str) else None,
            retry_after=retry_after,
        )
    # Not Sieve's error body: a proxy in between, or another server on that port.
    text = " ".join(resp.text.split())[:200] or resp.reason_phrase
    return cls(
        f"HTTP {resp.status_code} from {resp.request.url}: {text}",
        f"http_{resp.status_code}",
        status=resp.status_code,
        retry_after=retry_after,
    )


def error_from_transport(exc: httpx.TransportError, base_url: str) -> SieveClientError:
    """Map a transport failure to an exception that says what to check."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ConnectionFailed(f"cannot reach the Sieve API at {base_url}", "unreachable")
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeoutError(f"the Sieve API at {base_url} did not answer in time", "timeout")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ConnectionFailed(f"{base_url} is not an http:// or https:// URL", "bad_url")
    return ConnectionFailed(f"talking to the Sieve API at {base_url} failed: {exc}", "transport")
