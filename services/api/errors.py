"""One error body for the whole API: ``{"error": {"code", "message", "request_id"}}``."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    QuotaExceeded,
    SieveError,
    TooManyRequests,
    Unauthorized,
    UpstreamRejected,
    UpstreamUnavailable,
)
from core.numbers import first_bad_number

__all__ = ["error_response", "install_error_handlers", "redact_addresses", "status_for"]

log = logging.getLogger("sieve.api")

# Most specific first: PayloadTooLarge is an InvalidInput.
_STATUS: tuple[tuple[type[SieveError], int], ...] = (
    (PayloadTooLarge, 413),
    (InvalidInput, 400),
    (Unauthorized, 401),
    (NotFound, 404),
    (Conflict, 409),
    (TooManyRequests, 429),
    (UpstreamUnavailable, 503),
    (Overloaded, 503),
    (UpstreamRejected, 502),
)


# What names a peer: a URL, [v6]:port, an IPv4 address, host:port, a bare IPv6 address.
_ADDRESS = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+"
    r"|\[[0-9A-Fa-f:.]+(?:%\w+)?\](?::\d{1,5})?"
    r"|(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?!\w|\.\w)"
    r"|(?<![\w.:-])[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*:\d{1,5}(?!\w|\.\w)"
    r"|(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])"
)


def redact_addresses(text: str) -> str:
    """``text`` with every URL, ``host:port`` and IP address replaced by ``<address>``.

    Applied to every 5xx message and its log line at this one choke point: an adapter
    that quotes its SDK's error (``Error 111 connecting to redis:6379``) cannot leak where
    a peer lives, whatever route raised it.
    """
    return _ADDRESS.sub("<address>", text)


def status_for(exc: SieveError) -> int:
    """The HTTP status of a domain error."""
    if isinstance(exc, QuotaExceeded):
        # In flight: wait and retry (429). Capacity: only a delete frees it (409).
        return 429 if exc.retry_after is not None else 409
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "-"))


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    field: str | None = None,
    extra: dict[str, object] | None = None,
) -> JSONResponse:
    """Build the one error body (with ``field`` when one field of the request is at fault,
    and ``extra`` members such as a quota's name, limit and usage)."""
    if status >= 500:
        message = redact_addresses(message)
    error: dict[str, object] = {
        "code": code,
        "message": message,
        "request_id": _request_id(request),
    }
    if field is not None:
        error["field"] = field
    if extra:
        error.update(extra)
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Turn domain errors, HTTP errors and crashes into the one error body; never a trace."""

    @app.exception_handler(SieveError)
    async def _domain(request: Request, exc: SieveError) -> JSONResponse:
        status = status_for(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        retry_after = getattr(exc, "retry_after", None)
        retrying = (UpstreamUnavailable, Overloaded, QuotaExceeded, TooManyRequests)
        if isinstance(exc, retrying) and retry_after is not None:
            headers = {"Retry-After": str(max(1, round(retry_after)))}
        if isinstance(exc, Overloaded):
            log.warning("overloaded", extra={"code": exc.code})
        elif status >= 500:
            detail = redact_addresses(exc.message)
            log.warning("upstream error", extra={"code": exc.code, "detail": detail})
        field = exc.field if isinstance(exc, InvalidInput) else None
        extra: dict[str, object] | None = None
        if isinstance(exc, QuotaExceeded):
            extra = {"quota": exc.quota, "limit": exc.limit, "current": exc.current}
        return error_response(
            request, status, exc.code, exc.message, headers, field=field, extra=extra
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return error_response(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # A number JSON cannot carry faithfully (NaN, Infinity, an integer past 64 bits) is
        # not a schema question: 400 naming the field, wherever in the body it is.
        bad = first_bad_number(exc.body)
        if bad is not None:
            field, problem = bad
            return error_response(
                request, 400, "invalid_number", f"{field}: {problem}", field=field
            )
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        body = {
            "error": {
                "code": "invalid_request",
                "message": message,
                "request_id": _request_id(request),
                "details": [
                    {"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()
                ],
            }
        }
        return JSONResponse(body, status_code=422)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unhandled error",
            exc_info=(type(exc), exc, exc.__traceback__),
            extra={"request_id": _request_id(request)},
        )
        return error_response(request, 500, "internal_error", "internal error; see server logs")
