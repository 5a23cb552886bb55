"""Pure request building and response parsing, shared by the sync and async clients.

Every API call is a :class:`Call`: what to send and how to read the answer. The two clients
only move bytes (``SieveClient._run`` / ``AsyncSieveClient._run``), so they cannot disagree
about paths, bodies, retries or parsing.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter, ValidationError

from sieve_client.errors import BadResponseError, ValidationFailedError
from sieve_client.models import (
    CollectionCreateRequest,
    CollectionResponse,
    CollectionUpdateRequest,
    DocStatus,
    DocumentDeletedResponse,
    DocumentResponse,
    DocumentsPageResponse,
    EvaluationReport,
    FeedbackRequest,
    FeedbackResponse,
    IngestAcceptedResponse,
    IngestWaitResponse,
    JobResponse,
    ModelInfo,
    MultiQueryRequest,
    PolicyResponse,
    QueryFilter,
    QueryLogEntriesResponse,
    QueryLogRequest,
    QueryLogResponse,
    QueryMode,
    QueryPolicy,
    QueryRequest,
    QueryResponse,
    ReindexRequest,
    RestoreResponse,
    SnapshotResponse,
    WebhookCreatedResponse,
    WebhookCreateRequest,
    WebhookDeliveriesResponse,
    WebhookEvent,
    WebhookResponse,
)

__all__ = [
    "RETRY_STATUSES",
    "WAIT_UNBOUNDED_S",
    "Call",
    "DocumentImage",
    "FileInput",
    "UploadProgress",
    "add_feedback",
    "cancel_job",
    "clear_policy",
    "create_collection",
    "delete_collection",
    "delete_document",
    "disable_query_log",
    "enable_query_log",
    "get_collection",
    "get_document",
    "get_document_image",
    "get_evaluation",
    "get_job",
    "get_policy",
    "get_query_log",
    "get_snapshot",
    "health",
    "list_collections",
    "list_documents",
    "list_feedback",
    "list_models",
    "list_query_log",
    "load_files",
    "put_evaluation",
    "put_policy",
    "query",
    "query_raw",
    "ready",
    "reindex_collection",
    "replace_document",
    "restore_call",
    "snapshot_collection",
    "snapshot_file_path",
    "upload_chunks",
    "upload_files",
    "upload_jsonl",
    "upload_records",
    "wait_for_job",
    "wait_for_upload",
    "with_expiry",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# Overloaded or briefly unavailable: worth another try. Uploads are safe to repeat because
# the server deduplicates documents by content hash.
RETRY_STATUSES = frozenset({429, 503})
# wait=True without timeout_s: the server waits its own default, at most its maximum
# (SIEVE_API_WAIT_MAX_TIMEOUT_S, 300 s unless configured): the read timeout covers that.
WAIT_UNBOUNDED_S = 300.0
_UPLOAD_CHUNK = 64 * 1024

FileInput = str | os.PathLike[str] | tuple[str, bytes]


@dataclass(frozen=True)
class UploadProgress:
    """How much of an upload's body has been sent."""

    sent_bytes: int
    total_bytes: int
    files: int

    @property
    def fraction(self) -> float:
        """Sent share of the body, 0..1."""
        return self.sent_bytes / self.total_bytes if self.total_bytes else 1.0


ProgressCallback = Callable[[UploadProgress], None]


@dataclass(frozen=True)
class DocumentImage:
    """A document's page image as the API serves it (the upload, or a PDF page as PNG)."""

    data: bytes
    media_type: str
    width: int | None
    height: int | None


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: the request to send and the parser for a successful answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: Mapping[str, str | int] | None = None
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    upload: bool = False
    files: int = 0
    # ``?wait=true``: the server may hold the answer this long, on top of the read timeout.
    wait_s: float | None = None
    expect_json: bool = True
    # The answer is bytes, not JSON: ``parse`` gets ``(body, headers)``.
    binary: bool = False

    @property
    def where(self) -> str:
        """``METHOD /path``, for messages."""
        return f"{self.method} {self.path}"


def upload_chunks(body: bytes, files: int, progress: ProgressCallback | None) -> Iterator[bytes]:
    """The body in 64 KiB pieces, reporting progress after each one is handed to the socket."""
    total = len(body)
    if progress is not None:
        progress(UploadProgress(0, total, files))
    for start in range(0, total, _UPLOAD_CHUNK):
        piece = body[start : start + _UPLOAD_CHUNK]
        yield piece
        if progress is not None:
            progress(UploadProgress(min(start + _UPLOAD_CHUNK, total), total, files))


# ---------------------------------------------------------------- parsing


def _seg(value: str) -> str:
    """One URL path segment that no URL normalisation can turn into another resource.

    Every reserved character is quoted, ``/`` included (the API decodes ``%2F`` back for
    its ``{doc_id:path}`` routes), so ``../../victim`` is one segment, and a segment of dots
    only (``.``, ``..``) is sent as ``%2E``s: neither can become a step up to another
    collection. An empty value has no segment at all and is refused.

    Raises:
        ValueError: ``value`` is empty.
    """
    if not value:
        raise ValueError("an id or name in a URL path must not be empty")
    quoted = quote(value, safe="")
    return "%2E" * len(quoted) if quoted in (".", "..") else quoted


def _unexpected(where: str, why: str) -> BadResponseError:
    return BadResponseError(
        f"unexpected response to {where}: {why} (is this a Sieve API?)", "bad_response"
    )


def _model(model: type[M], where: str) -> Callable[[Any], M]:
    def parse(body: Any) -> M:
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise _unexpected(where, f"{loc}: {first['msg']}") from None

    return parse


def _listed(model: type[M], key: str, where: str) -> Callable[[Any], list[M]]:
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]

    def parse(body: Any) -> list[M]:
        items = body.get(key) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise _unexpected(where, f"no {key!r} list")
        try:
            out: list[M] = adapter.validate_python(items)
        except ValidationError as exc:
            raise _unexpected(where, str(exc.errors()[0]["msg"])) from None
        return out

    return parse


def _build(model: type[M], data: Mapping[str, Any]) -> M:
    """A request body, checked against the API's schema before it is sent."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"]) or "body"
        raise ValidationFailedError(
            f"invalid request: {loc}: {first['msg']}",
            "invalid_request",
            details=exc.errors(include_url=False, include_context=False),
        ) from None


def _none(_: Any) -> None:
    return None


def _raw(body: Any) -> dict[str, Any]:
    return body if isinstance(body, dict) else {"body": body}


# ---------------------------------------------------------------- collections


def list_collections() -> Call[list[CollectionResponse]]:
    """``GET /v1/collections``."""
    where = "GET /v1/collections"
    return Call("GET", "/v1/collections", _listed(CollectionResponse, "collections", where))


def get_collection(name: str) -> Call[CollectionResponse]:
    """``GET /v1/collections/{name}``."""
    path = f"/v1/collections/{_seg(name)}"
    return Call("GET", path, _model(CollectionResponse, path))


def create_collection(
    name: str,
    *,
    embedding_model: str | None = None,
    hybrid: bool = True,
    rerank_model: str | None = None,
    min_score: float | None = None,
    late_interaction: bool = False,
    late_model: str | None = None,
    ttl_s: float | None = None,
) -> Call[CollectionResponse]:
    """``POST /v1/collections``."""
    spec = _build(
        CollectionCreateRequest,
        {
            "name": name,
            "embedding_model": embedding_model,
            "hybrid": hybrid,
            "rerank_model": rerank_model,
            "min_score": min_score,
            "late_interaction": late_interaction,
            "late_model": late_model,
            "ttl_s": ttl_s,
        },
    )
    return Call(
        "POST",
        "/v1/collections",
        _model(CollectionResponse, "POST /v1/collections"),
        json=spec.model_dump(mode="json", exclude_none=True),
    )


def reindex_collection(
    name: str,
    *,
    embedding_model: str | None = None,
    late_interaction: bool | None = None,
    late_model: str | None = None,
) -> Call[JobResponse]:
    """``POST /v1/collections/{name}/reindex`` (202: a job)."""
    spec = _build(
        ReindexRequest,
        {
            "embedding_model": embedding_model,
            "late_interaction": late_interaction,
            "late_model": late_model,
        },
    )
    path = f"/v1/collections/{_seg(name)}/reindex"
    return Call(
        "POST",
        path,
        _model(JobResponse, path),
        json=spec.model_dump(mode="json", exclude_none=True),
    )


def update_collection(name: str, *, ttl_s: float | None) -> Call[CollectionResponse]:
    """``PATCH /v1/collections/{name}`` (``ttl_s=None``: later uploads get no expiry)."""
    path = f"/v1/collections/{_seg(name)}"
    spec = _build(CollectionUpdateRequest, {"ttl_s": ttl_s})
    parse = _model(CollectionResponse, f"PATCH {path}")
    return Call("PATCH", path, parse, json=spec.model_dump(mode="json"))


def delete_collection(name: str) -> Call[None]:
    """``DELETE /v1/collections/{name}``."""
    return Call("DELETE", f"/v1/collections/{_seg(name)}", _none, expect_json=False)


# ---------------------------------------------------------------- backups


def snapshot_collection(name: str) -> Call[SnapshotResponse]:
    """``POST /v1/collections/{name}/snapshot`` (202: a snapshot job)."""
    path = f"/v1/collections/{_seg(name)}/snapshot"
    return Call("POST", path, _model(SnapshotResponse, path))


def get_snapshot(snapshot_id: str) -> Call[SnapshotResponse]:
    """``GET /v1/snapshots/{id}``."""
    path = f"/v1/snapshots/{_seg(snapshot_id)}"
    return Call("GET", path, _model(SnapshotResponse, path))


def snapshot_file_path(snapshot_id: str) -> str:
    """Where a completed snapshot's bundle is downloaded from."""
    return f"/v1/snapshots/{_seg(snapshot_id)}/file"


def restore_call(name: str | None, *, reindex: bool) -> Call[RestoreResponse]:
    """``POST /v1/collections/restore`` (the bundle is the body, streamed by the client)."""
    params: dict[str, str | int] = {"reindex": "true" if reindex else "false"}
    if name is not None:
        _build(CollectionCreateRequest, {"name": name})  # the same name rule, checked here
        params["name"] = name
    path = "/v1/collections/restore"
    return Call(
        "POST",
        path,
        _model(RestoreResponse, path),
        params=params,
        headers={"Content-Type": "application/zstd"},
        upload=True,
    )


# ---------------------------------------------------------------- documents


def load_files(files: Sequence[FileInput]) -> list[tuple[str, bytes]]:
    """Paths read from disk (named by their file name), ``(name, bytes)`` pairs kept."""
    out: list[tuple[str, bytes]] = []
    for item in files:
        if isinstance(item, tuple):
            out.append(item)
        else:
            path = Path(item)
            out.append((path.name, path.read_bytes()))
    return out


def _multipart(files: Sequence[tuple[str, bytes]], boundary: str) -> bytes:
    parts: list[bytes] = []
    for name, data in files:
        safe = name.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="files"; filename="{safe}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts += [head.encode(), data, b"\r\n"]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)


def _documents_path(collection: str) -> str:
    return f"/v1/collections/{_seg(collection)}/documents"


def upload_files(
    collection: str, files: Sequence[tuple[str, bytes]], *, boundary: str | None = None
) -> Call[IngestAcceptedResponse]:
    """``POST .../documents`` as multipart field ``files`` (documents, archives, .jsonl)."""
    if not files:
        raise ValueError("upload at least one file")
    boundary = boundary or f"sieve-{secrets.token_hex(16)}"
    path = _documents_path(collection)
    return Call(
        "POST",
        path,
        _model(IngestAcceptedResponse, path),
        body=_multipart(files, boundary),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        upload=True,
        files=len(files),
    )


def upload_records(
    collection: str, documents: Sequence[Mapping[str, Any]]
) -> Call[IngestAcceptedResponse]:
    """``POST .../documents`` as JSON ``{"documents": [{"id", "text", "title", "metadata"}]}``."""
    path = _documents_path(collection)
    body = json.dumps({"documents": list(documents)}, ensure_ascii=False).encode()
    return Call(
        "POST",
        path,
        _model(IngestAcceptedResponse, path),
        body=body,
        headers={"Content-Type": "application/json"},
        upload=True,
        files=len(documents),
    )


def upload_jsonl(collection: str, lines: bytes) -> Call[IngestAcceptedResponse]:
    """``POST .../documents`` as BEIR JSON lines (``_id``, ``title``, ``text``)."""
    path = _documents_path(collection)
    return Call(
        "POST",
        path,
        _model(IngestAcceptedResponse, path),
        body=lines,
        headers={"Content-Type": "application/x-ndjson"},
        upload=True,
        files=1,
    )


def replace_document(
    collection: str,
    document_id: str,
    *,
    text: str | None = None,
    title: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    file: tuple[str, bytes] | None = None,
) -> Call[IngestAcceptedResponse]:
    """``PUT .../documents/{id}``: new text (JSON) or one new file (multipart)."""
    if (text is None) == (file is None):
        raise ValueError("replace a document with either text or a file")
    path = f"{_documents_path(collection)}/{_seg(document_id)}"
    parse = _model(IngestAcceptedResponse, path)
    if file is not None:
        boundary = f"sieve-{secrets.token_hex(16)}"
        return Call(
            "PUT",
            path,
            parse,
            body=_multipart([file], boundary),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            upload=True,
            files=1,
        )
    record: dict[str, Any] = {"text": text}
    if title is not None:
        record["title"] = title
    if metadata is not None:
        record["metadata"] = dict(metadata)
    return Call(
        "PUT",
        path,
        parse,
        body=json.dumps(record, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json"},
        upload=True,
        files=1,
    )


def _waiting(call: Call[T], wait: bool, timeout_s: float | None) -> Call[T]:
    """``call`` with ``?wait=true[&timeout_s=...]`` and a read timeout that covers the wait."""
    if timeout_s is not None and not wait:
        raise ValueError("timeout_s applies only with wait=True")
    if timeout_s is not None and timeout_s <= 0:
        raise ValueError("timeout_s must be > 0")
    if not wait:
        return call
    params: dict[str, str | int] = {**(call.params or {}), "wait": "true"}
    if timeout_s is not None:
        params["timeout_s"] = f"{timeout_s:g}"
    return replace(call, params=params, wait_s=WAIT_UNBOUNDED_S if timeout_s is None else timeout_s)


def with_expiry(call: Call[T], expires_at: datetime | str | None, ttl_s: float | None) -> Call[T]:
    """An upload whose documents expire at ``expires_at`` or ``ttl_s`` seconds after it.

    Raises:
        ValueError: both given, or a ``datetime`` without a timezone (ambiguous).
    """
    if expires_at is None and ttl_s is None:
        return call
    if expires_at is not None and ttl_s is not None:
        raise ValueError("give expires_at or ttl_s, not both")
    params: dict[str, str | int] = dict(call.params or {})
    if isinstance(expires_at, datetime):
        if expires_at.utcoffset() is None:
            raise ValueError("expires_at needs a timezone (e.g. datetime.now(UTC) + ...)")
        params["expires_at"] = expires_at.isoformat()
    elif expires_at is not None:
        params["expires_at"] = expires_at
    elif ttl_s is not None:
        params["ttl_s"] = repr(float(ttl_s))
    return replace(call, params=params)


def wait_for_upload(
    call: Call[IngestAcceptedResponse], wait: bool, timeout_s: float | None
) -> Call[IngestAcceptedResponse]:
    """An upload that (``wait``) answers with its job: an :class:`IngestWaitResponse`."""
    waited = _waiting(call, wait, timeout_s)
    if waited is call:
        return call
    return replace(waited, parse=_model(IngestWaitResponse, call.path))


def wait_for_job(call: Call[JobResponse], wait: bool, timeout_s: float | None) -> Call[JobResponse]:
    """A job-starting call (re-index) that (``wait``) answers when the job is terminal."""
    return _waiting(call, wait, timeout_s)


def list_documents(
    collection: str, *, status: DocStatus | str | None = None, offset: int = 0, limit: int = 100
) -> Call[DocumentsPageResponse]:
    """``GET .../documents``: a page, in upload order, optionally by status."""
    path = _documents_path(collection)
    params: dict[str, str | int] = {"offset": offset, "limit": limit}
    if status is not None:
        params["status"] = str(status)
    return Call("GET", path, _model(DocumentsPageResponse, path), params=params)


def get_document(collection: str, document_id: str) -> Call[DocumentResponse]:
    """``GET .../documents/{id}``."""
    path = f"{_documents_path(collection)}/{_seg(document_id)}"
    return Call("GET", path, _model(DocumentResponse, path))


def delete_document(collection: str, document_id: str) -> Call[DocumentDeletedResponse]:
    """``DELETE .../documents/{id}``: every chunk of it leaves the store."""
    path = f"{_documents_path(collection)}/{_seg(document_id)}"
    return Call("DELETE", path, _model(DocumentDeletedResponse, path))


def _image(answer: tuple[bytes, Mapping[str, str]]) -> DocumentImage:
    body, headers = answer

    def size(name: str) -> int | None:
        value = headers.get(name, "")
        return int(value) if value.isdigit() else None

    return DocumentImage(
        data=body,
        media_type=headers.get("content-type", "application/octet-stream"),
        width=size("x-image-width"),
        height=size("x-image-height"),
    )


def get_document_image(collection: str, document_id: str, *, page: int = 1) -> Call[DocumentImage]:
    """``GET .../documents/{id}/image?page=N``: an image document's page, or a PDF page."""
    path = f"{_documents_path(collection)}/{_seg(document_id)}/image"
    return Call("GET", path, _image, params={"page": page}, binary=True)


# ---------------------------------------------------------------- jobs


def get_job(job_id: str) -> Call[JobResponse]:
    """``GET /v1/jobs/{id}``."""
    path = f"/v1/jobs/{_seg(job_id)}"
    return Call("GET", path, _model(JobResponse, path))


def cancel_job(job_id: str) -> Call[JobResponse]:
    """``POST /v1/jobs/{id}/cancel``."""
    path = f"/v1/jobs/{_seg(job_id)}/cancel"
    return Call("POST", path, _model(JobResponse, path))


# ---------------------------------------------------------------- query and models


def query(
    collection: str | Sequence[str],
    text: str,
    *,
    top_k: int | None = None,
    top_n: int | None = None,
    min_score: float | None = None,
    filter: QueryFilter | Mapping[str, Any] | None = None,
    mode: QueryMode | str = QueryMode.HYBRID,
    rerank: bool = True,
    rerank_model: str | None = None,
    final: str | None = None,
    on_rerank_error: str | None = None,
    rerank_depth: int | None = None,
    autocut: int | None = None,
    late: bool = True,
    late_weight: float | None = None,
    late_recall_weight: float | None = None,
    explain: bool = False,
    explain_documents: Sequence[str] | None = None,
) -> Call[QueryResponse]:
    """``POST /v1/collections/{name}/query`` for one collection, ``POST /v1/query`` for several.

    Raises:
        ValidationFailedError: a knob out of the API's range (checked before sending).
    """
    knobs: dict[str, Any] = {
        "query": text,
        "top_k": top_k,
        "top_n": top_n,
        "min_score": min_score,
        "filter": filter,
        "mode": mode,
        "rerank": rerank,
        "rerank_model": rerank_model,
        "final": final,
        "on_rerank_error": on_rerank_error,
        "rerank_depth": rerank_depth,
        "autocut": autocut,
        "late": late,
        "late_weight": late_weight,
        "late_recall_weight": late_recall_weight,
        "explain": explain,
        "explain_documents": list(explain_documents) if explain_documents is not None else None,
    }
    path, body = _query_request(collection, knobs)
    return Call("POST", path, _model(QueryResponse, path), json=body)


def _query_request(
    collection: str | Sequence[str], knobs: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The path and the checked body of a query on one collection or several."""
    if isinstance(collection, str):
        path = f"/v1/collections/{_seg(collection)}/query"
        req: QueryRequest = _build(QueryRequest, knobs)
    else:
        path = "/v1/query"
        req = _build(MultiQueryRequest, {**knobs, "collections": list(collection)})
    return path, req.model_dump(mode="json", exclude_none=True)


def _object(where: str) -> Callable[[Any], dict[str, Any]]:
    def parse(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _unexpected(where, "not a JSON object")
        return body

    return parse


def query_raw(
    collection: str | Sequence[str], body: Mapping[str, Any], *, log: bool = True
) -> Call[dict[str, Any]]:
    """A query from a ready request body (``QueryRequest``'s fields); the answer's JSON as the
    server sent it, for callers that keep or print it as is (``sieve query --json``).
    ``log=False`` keeps it out of the collections' query logs (evaluation traffic).

    Raises:
        ValidationFailedError: the body does not fit the API's schema (checked before sending).
    """
    path, checked = _query_request(collection, body)
    headers = {} if log else {"X-Sieve-Query-Log": "skip"}
    return Call("POST", path, _object(path), json=checked, headers=headers)


def get_evaluation(collection: str) -> Call[EvaluationReport]:
    """``GET /v1/collections/{name}/evaluation``: the last stored ``sieve eval`` report."""
    path = f"/v1/collections/{_seg(collection)}/evaluation"
    return Call("GET", path, _model(EvaluationReport, path))


def put_evaluation(collection: str, report: EvaluationReport) -> Call[EvaluationReport]:
    """``PUT /v1/collections/{name}/evaluation``: store a report (replacing the last one)."""
    path = f"/v1/collections/{_seg(collection)}/evaluation"
    body = report.model_dump(mode="json", exclude={"saved_at"})
    return Call("PUT", path, _model(EvaluationReport, path), json=body)


def get_policy(collection: str) -> Call[PolicyResponse]:
    """``GET /v1/collections/{name}/policy``: the stored query policy (None: defaults)."""
    path = f"/v1/collections/{_seg(collection)}/policy"
    return Call("GET", path, _model(PolicyResponse, path))


def put_policy(collection: str, policy: QueryPolicy | Mapping[str, Any]) -> Call[PolicyResponse]:
    """``PUT /v1/collections/{name}/policy``: queries use it when they do not say otherwise.

    Raises:
        ValidationFailedError: a field out of the API's range (checked before sending).
    """
    path = f"/v1/collections/{_seg(collection)}/policy"
    req = policy if isinstance(policy, QueryPolicy) else _build(QueryPolicy, policy)
    body = req.model_dump(mode="json", exclude_none=True)
    return Call("PUT", path, _model(PolicyResponse, path), json=body)


def clear_policy(collection: str) -> Call[PolicyResponse]:
    """``DELETE /v1/collections/{name}/policy``: back to the server's defaults."""
    path = f"/v1/collections/{_seg(collection)}/policy"
    return Call("DELETE", path, _model(PolicyResponse, path))


def add_feedback(
    collection: str, query: str, document_id: str, *, relevant: bool
) -> Call[FeedbackResponse]:
    """``POST /v1/collections/{name}/feedback``: one judgment (``sieve tune --feedback``)."""
    path = f"/v1/collections/{_seg(collection)}/feedback"
    req = _build(
        FeedbackRequest, {"query": query, "document_id": document_id, "relevant": relevant}
    )
    return Call("POST", path, _model(FeedbackResponse, path), json=req.model_dump(mode="json"))


def list_feedback(
    collection: str, *, cursor: str | None = None, limit: int = 1000
) -> Call[FeedbackResponse]:
    """``GET /v1/collections/{name}/feedback``: a page of judgments, least recently written
    first; ``next_cursor`` of the answer is the next page's ``cursor``."""
    path = f"/v1/collections/{_seg(collection)}/feedback"
    params: dict[str, str | int] = {"limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    return Call("GET", path, _model(FeedbackResponse, path), params=params)


def get_query_log(collection: str) -> Call[QueryLogResponse]:
    """``GET /v1/collections/{name}/query-log``: its config (None: off) and entries held."""
    path = f"/v1/collections/{_seg(collection)}/query-log"
    return Call("GET", path, _model(QueryLogResponse, path))


def enable_query_log(
    collection: str,
    *,
    sample_rate: float = 1.0,
    max_entries: int | None = None,
    ttl_s: int | None = None,
) -> Call[QueryLogResponse]:
    """``PUT /v1/collections/{name}/query-log``: keep a sample of the collection's queries.

    Raises:
        ValidationFailedError: a field out of the API's range (checked before sending).
    """
    path = f"/v1/collections/{_seg(collection)}/query-log"
    req = _build(
        QueryLogRequest, {"sample_rate": sample_rate, "max_entries": max_entries, "ttl_s": ttl_s}
    )
    body = req.model_dump(mode="json", exclude_none=True)
    return Call("PUT", path, _model(QueryLogResponse, path), json=body)


def disable_query_log(collection: str) -> Call[QueryLogResponse]:
    """``DELETE /v1/collections/{name}/query-log``: turn it off and drop its entries."""
    path = f"/v1/collections/{_seg(collection)}/query-log"
    return Call("DELETE", path, _model(QueryLogResponse, path))


def list_query_log(
    collection: str, *, offset: int = 0, limit: int = 100
) -> Call[QueryLogEntriesResponse]:
    """``GET /v1/collections/{name}/query-log/entries``: a page of logged queries, most
    recently seen first; ``next_offset`` of the answer is the next page's ``offset``."""
    path = f"/v1/collections/{_seg(collection)}/query-log/entries"
    params: dict[str, str | int] = {"offset": offset, "limit": limit}
    return Call("GET", path, _model(QueryLogEntriesResponse, path), params=params)


def create_webhook(
    collection: str,
    url: str,
    *,
    events: Sequence[WebhookEvent | str] | None = None,
    description: str = "",
) -> Call[WebhookCreatedResponse]:
    """``POST /v1/collections/{name}/webhooks``: subscribe ``url`` (all events by default)."""
    path = f"/v1/collections/{_seg(collection)}/webhooks"
    fields: dict[str, Any] = {"url": url, "description": description}
    if events is not None:
        fields["events"] = list(events)
    req = _build(WebhookCreateRequest, fields)
    return Call(
        "POST", path, _model(WebhookCreatedResponse, path), json=req.model_dump(mode="json")
    )


def list_webhooks(collection: str) -> Call[list[WebhookResponse]]:
    """``GET /v1/collections/{name}/webhooks``: the subscriptions (no secrets)."""
    path = f"/v1/collections/{_seg(collection)}/webhooks"
    return Call("GET", path, _listed(WebhookResponse, "webhooks", f"GET {path}"))


def delete_webhook(collection: str, webhook_id: str) -> Call[None]:
    """``DELETE /v1/collections/{name}/webhooks/{id}``."""
    path = f"/v1/collections/{_seg(collection)}/webhooks/{_seg(webhook_id)}"
    return Call("DELETE", path, _none, expect_json=False)


def list_webhook_deliveries(
    collection: str, webhook_id: str, *, offset: int = 0, limit: int = 50
) -> Call[WebhookDeliveriesResponse]:
    """``GET /v1/collections/{name}/webhooks/{id}/deliveries``: attempts, newest first."""
    path = f"/v1/collections/{_seg(collection)}/webhooks/{_seg(webhook_id)}/deliveries"
    params: dict[str, str | int] = {"offset": offset, "limit": limit}
    return Call("GET", path, _model(WebhookDeliveriesResponse, path), params=params)


def list_models() -> Call[list[ModelInfo]]:
    """``GET /v1/models``: the hub's models."""
    return Call("GET", "/v1/models", _listed(ModelInfo, "data", "GET /v1/models"))


def health() -> Call[dict[str, Any]]:
    """``GET /healthz``: liveness."""
    return Call("GET", "/healthz", _raw)


def ready() -> Call[dict[str, Any]]:
    """``GET /readyz``: readiness (Redis, store, hub); a 503 raises."""
    return Call("GET", "/readyz", _raw)
