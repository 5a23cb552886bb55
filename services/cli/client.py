"""The CLI's HTTP client for the Sieve API: explicit timeouts, a small retry budget, and one
exception (``ApiError``) for every way a call can fail."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from services.api.schemas import CollectionResponse, IngestAcceptedResponse, JobResponse
from services.api.schemas_query import QueryResponse

__all__ = [
    "ApiError",
    "SieveClient",
    "error_from_response",
    "error_from_transport",
    "retry_delay",
]

_M = TypeVar("_M", bound=BaseModel)

# Overloaded or briefly unavailable: worth another try. Uploads are safe to repeat because
# the server deduplicates documents by content hash.
_RETRY_STATUSES = frozenset({429, 503})
_MAX_RETRY_DELAY_S = 10.0
_DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0, pool=5.0)
# An upload batch can be tens of MB and the server fsyncs every blob before it answers.
_UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=5.0, pool=5.0)


class ApiError(Exception):
    """A failed API call: the error body's code and message, or a transport failure."""

    def __init__(
        self, message: str, code: str, status: int | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


def error_from_response(resp: httpx.Response) -> ApiError:
    """Map an error response (Sieve's one error body, or anything else) to an ``ApiError``."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        request_id = err.get("request_id")
        return ApiError(
            err["message"],
            str(err.get("code") or f"http_{resp.status_code}"),
            resp.status_code,
            request_id if isinstance(request_id, str) else None,
        )
    # Not Sieve's error body: a proxy in between, or another server on that port.
    text = " ".join(resp.text.split())[:200] or resp.reason_phrase
    return ApiError(
        f"HTTP {resp.status_code} from {resp.request.url}: {text}",
        f"http_{resp.status_code}",
        resp.status_code,
    )


def error_from_transport(exc: httpx.TransportError, base_url: str) -> ApiError:
    """Map a transport failure to an ``ApiError`` that says what to check."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ApiError(
            f"cannot reach the Sieve API at {base_url} — is `sieve up` running?", "unreachable"
        )
    if isinstance(exc, httpx.TimeoutException):
        return ApiError(f"the Sieve API at {base_url} did not answer in time", "timeout")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ApiError(f"{base_url} is not an http:// or https:// URL", "bad_url")
    return ApiError(f"talking to the Sieve API at {base_url} failed: {exc}", "transport_error")


def retry_delay(resp: httpx.Response, attempt: int) -> float:
    """Seconds to wait before retrying ``resp``: its Retry-After, else exponential, capped."""
    header = resp.headers.get("retry-after")
    try:
        delay = float(header) if header is not None else 0.5 * 2**attempt
    except ValueError:
        delay = 0.5 * 2**attempt
    return min(max(delay, 0.0), _MAX_RETRY_DELAY_S)


class SieveClient:
    """A typed, synchronous client for the Sieve API (the endpoints the CLI uses)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        max_retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._max_retries = max_retries
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=_DEFAULT_TIMEOUT,
            # Connection failures only: retried once, at once (a restarting server).
            transport=httpx.HTTPTransport(retries=1),
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # ------------------------------------------------------------------ collections
    def list_collections(self) -> list[CollectionResponse]:
        """The tenant's collections."""
        body = self._json("GET", "/v1/collections")
        items = body.get("collections") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise _unexpected("GET /v1/collections", "no 'collections' list")
        return [_parse(CollectionResponse, item, "GET /v1/collections") for item in items]

    def get_collection(self, name: str) -> CollectionResponse:
        """One collection with its counts.

        Raises:
            ApiError: ``collection_not_found`` and the like.
        """
        path = f"/v1/collections/{_seg(name)}"
        return _parse(CollectionResponse, self._json("GET", path), path)

    def create_collection(self, spec: dict[str, Any]) -> CollectionResponse:
        """Create a collection (``spec`` is a ``CollectionCreateRequest`` body)."""
        return _parse(
            CollectionResponse, self._json("POST", "/v1/collections", json=spec), "create"
        )

    def delete_collection(self, name: str) -> None:
        """Delete a collection with its documents and chunks."""
        self._send("DELETE", f"/v1/collections/{_seg(name)}")

    def put_policy(self, name: str, policy: dict[str, Any]) -> dict[str, Any]:
        """Store a query policy on a collection (``PUT /v1/collections/{name}/policy``)."""
        out = self._json("PUT", f"/v1/collections/{_seg(name)}/policy", json=policy)
        if not isinstance(out, dict):
            raise _unexpected("PUT policy", "not a JSON object")
        return out

    def clear_policy(self, name: str) -> None:
        """Drop a collection's stored policy: its queries use the server's defaults."""
        self._send("DELETE", f"/v1/collections/{_seg(name)}/policy")

    def feedback(self, name: str) -> list[dict[str, Any]]:
        """Every relevance judgment recorded for a collection (page after page)."""
        judged: list[dict[str, Any]] = []
        params: dict[str, str] = {}
        while True:
            out = self._json("GET", f"/v1/collections/{_seg(name)}/feedback", params=params)
            items = out.get("judgments") if isinstance(out, dict) else None
            if not isinstance(items, list):
                raise _unexpected("GET feedback", "no 'judgments' list")
            judged += [item for item in items if isinstance(item, dict)]
            cursor = out.get("next_cursor")
            if not isinstance(cursor, str) or not items:
                return judged
            params = {"cursor": cursor}

    # ------------------------------------------------------------------ documents
    def upload_files(
        self, collection: str, files: Sequence[tuple[str, bytes]]
    ) -> IngestAcceptedResponse:
        """Upload files (documents, JSONL files or archives) as multipart field ``files``."""
        path = f"/v1/collections/{_seg(collection)}/documents"
        parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
        body = self._json("POST", path, files=parts, timeout=_UPLOAD_TIMEOUT)
        return _parse(IngestAcceptedResponse, body, path)

    def upload_jsonl(self, collection: str, lines: bytes) -> IngestAcceptedResponse:
        """Upload BEIR-layout JSON lines as ``application/x-ndjson``."""
        path = f"/v1/collections/{_seg(collection)}/documents"
        body = self._json(
            "POST",
            path,
            content=lines,
            headers={"Content-Type": "application/x-ndjson"},
            timeout=_UPLOAD_TIMEOUT,
        )
        return _parse(IngestAcceptedResponse, body, path)

    # ------------------------------------------------------------------ jobs
    def get_job(self, job_id: str) -> JobResponse:
        """A job's state, counts and errors."""
        path = f"/v1/jobs/{_seg(job_id)}"
        return _parse(JobResponse, self._json("GET", path), path)

    def cancel_job(self, job_id: str) -> JobResponse:
        """Cancel a job; documents already written stay."""
        path = f"/v1/jobs/{_seg(job_id)}/cancel"
        return _parse(JobResponse, self._json("POST", path), path)

    # ------------------------------------------------------------------ query
    def query_raw(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        """Query a collection; the response JSON as the server sent it."""
        path = f"/v1/collections/{_seg(collection)}/query"
        out = self._json("POST", path, json=body)
        if not isinstance(out, dict):
            raise _unexpected(path, "not a JSON object")
        return out

    def query(self, collection: str, body: dict[str, Any]) -> QueryResponse:
        """Query a collection."""
        return _parse(QueryResponse, self.query_raw(collection, body), "query")

    # ------------------------------------------------------------------ evaluation
    def put_evaluation(self, collection: str, report: dict[str, Any]) -> None:
        """Store a ``sieve eval`` report on the server (the console shows it)."""
        self._send("PUT", f"/v1/collections/{_seg(collection)}/evaluation", json=report)

    # ------------------------------------------------------------------ transport
    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self._send(method, path, **kwargs)
        try:
            return resp.json()
        except ValueError:
            raise _unexpected(f"{method} {path}", "the body is not JSON") from None

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                resp = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise error_from_transport(exc, self.base_url) from exc
            if resp.is_success:
                return resp
            if resp.status_code in _RETRY_STATUSES and attempt < self._max_retries:
                self._sleep(retry_delay(resp, attempt))
                attempt += 1
                continue
            raise error_from_response(resp)


def _seg(value: str) -> str:
    """One URL path segment: a user's id can never reach another route."""
    return quote(value, safe="")


def _unexpected(where: str, why: str) -> ApiError:
    return ApiError(f"unexpected response to {where}: {why} (is this a Sieve API?)", "bad_response")


def _parse(model: type[_M], body: Any, where: str) -> _M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise _unexpected(where, f"{loc}: {first['msg']}") from None
