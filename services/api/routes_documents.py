"""``/v1/collections/{name}/documents``: upload (files, archives, JSON, JSONL), list, show,
replace, delete."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from core.errors import InvalidInput, PayloadTooLarge
from core.expiry import expired, expires_iso, upload_expiry
from indexing.accept import (
    Accepted,
    UploadItem,
    accept,
    check_document_id,
    items_from_records,
    stage_file,
    stage_items,
)
from indexing.changes import delete_document as delete_doc
from indexing.records import DocStatus, DocumentRecord
from ingest.archives import ExpansionBudget, ExpansionRefused
from ingest.blob_store import BlobStaging
from ingest.documents import ParseFailure, ParseOutcome
from ingest.limits import IngestLimits
from ingest.records import iter_jsonl_records, loads_json, read_json_records, record_to_document
from services.api.deps import ApiDeps, Deps, Tenant, in_thread
from services.api.schemas import (
    DocumentResponse,
    DocumentsPageResponse,
    IngestAcceptedResponse,
    IngestWaitResponse,
)
from services.api.waiting import Wait, finish_upload, wait_responses, waiting

__all__ = ["router"]

router = APIRouter(prefix="/v1/collections/{name}/documents", tags=["documents"])

_JSON_TYPES = ("application/json",)
_JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines")
_MULTIPART = "multipart/form-data"

# An upload's expiry, for every document it holds (README, "Expiry").
ExpiresAt = Annotated[
    str | None,
    Query(
        max_length=64,
        description="ISO-8601 with a UTC offset: the documents expire then",
    ),
]
TtlS = Annotated[
    float | None, Query(description="seconds from now the documents expire (not with expires_at)")
]


def _limits(deps: ApiDeps) -> IngestLimits:
    return IngestLimits(
        max_file_bytes=deps.ingest.max_file_bytes,
        max_pages=deps.ingest.max_pages,
        max_archive_total_bytes=deps.api.max_expanded_bytes,
        max_archive_members=deps.api.max_expanded_members,
    )


def _budget(deps: ApiDeps) -> ExpansionBudget:
    """One expansion budget for every archive of the request."""
    return ExpansionBudget(
        max_members=deps.api.max_expanded_members, max_bytes=deps.api.max_expanded_bytes
    )


async def _body(request: Request, deps: ApiDeps) -> bytes:
    declared = int(request.headers.get("content-length") or 0)
    if declared > deps.api.max_upload_bytes:
        raise PayloadTooLarge(
            f"request body of {declared} bytes; the limit is {deps.api.max_upload_bytes}"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > deps.api.max_upload_bytes:
            raise PayloadTooLarge(f"request body over the limit of {deps.api.max_upload_bytes}")
        chunks.append(chunk)
    return b"".join(chunks)


async def _items(
    request: Request, deps: ApiDeps, staging: BlobStaging, *, doc_id: str | None = None
) -> list[UploadItem]:
    """The request's documents, their blobs staged; the CPU work runs on the CPU pool."""
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    limits = _limits(deps)
    cpu = deps.pools.cpu
    if ctype == _MULTIPART:
        declared = int(request.headers.get("content-length") or 0)
        if declared > deps.api.max_upload_bytes:
            raise PayloadTooLarge(
                f"request body of {declared} bytes; the limit is {deps.api.max_upload_bytes}"
            )
        # Starlette spools each file part past 1 MiB to disk while it parses on the loop
        # (python-multipart: ~35 ms per 64 MiB here), so the body is not held in memory.
        form = await request.form(max_files=10_000, max_part_size=deps.api.max_upload_bytes)
        try:
            files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
            if not files:
                raise InvalidInput(
                    "multipart upload without files: send them as form field 'files'",
                    code="empty_upload",
                )
            if doc_id is not None and len(files) != 1:
                raise InvalidInput("replace a document with exactly one file", code="one_file")
            return await cpu.run(_stage_files, files, limits, staging, _budget(deps), doc_id)
        finally:
            await form.close()
    body = await _body(request, deps)
    if ctype in _JSON_TYPES:
        if doc_id is not None:
            return await cpu.run(
                lambda: stage_items(
                    items_from_records([_replacement_record(body, doc_id, limits)]), staging
                )
            )
        return await cpu.run(
            lambda: stage_items(items_from_records(read_json_records(body, limits)), staging)
        )
    if ctype in _JSONL_TYPES and doc_id is None:
        return await cpu.run(
            lambda: stage_items(
                items_from_records(iter_jsonl_records(body.splitlines(), limits)), staging
            )
        )
    raise InvalidInput(
        f"unsupported Content-Type {ctype or '(none)'!r}: send multipart/form-data files "
        '(documents or a zip/tar archive), application/json {"documents": [...]}, or '
        "application/x-ndjson lines in the BEIR layout",
        code="unsupported_media_type",
    )


def _stage_files(
    files: list[UploadFile],
    limits: IngestLimits,
    staging: BlobStaging,
    budget: ExpansionBudget,
    doc_id: str | None,
) -> list[UploadItem]:
    """Read each spooled file part (one at a time) and stage it or its archive's members.

    Raises:
        PayloadTooLarge: a file over its limit, or the archives over the request's budget
            (naming ``SIEVE_API_MAX_EXPANDED_BYTES`` / ``_MEMBERS``).
    """
    items: list[UploadItem] = []
    for upload in files:
        upload.file.seek(0)
        data = upload.file.read()
        try:
            items += stage_file(
                data, upload.filename or "upload", limits, staging, budget, doc_id=doc_id
            )
        except ExpansionRefused as exc:
            setting = (
                "SIEVE_API_MAX_EXPANDED_MEMBERS"
                if exc.code == "request_too_many_members"
                else "SIEVE_API_MAX_EXPANDED_BYTES"
            )
            raise PayloadTooLarge(f"{exc.message} ({setting})", code=exc.code) from exc
        del data
    return items


def _replacement_record(body: bytes, doc_id: str, limits: IngestLimits) -> ParseOutcome:
    """The one record of a JSON replace; an invalid one is refused, never stored as failed.

    Raises:
        InvalidInput: not an object, or a record that fails validation (``field`` named):
            the document keeps its current version.
    """
    record = loads_json(body)
    if not isinstance(record, dict):
        raise InvalidInput('expected {"text": ..., "title": ..., "metadata": ...}')
    outcome = record_to_document({**record, "id": doc_id}, "body", limits)
    if isinstance(outcome, ParseFailure):
        raise outcome.to_error()
    return outcome


@router.post(
    "",
    status_code=202,
    response_model=IngestAcceptedResponse,
    responses=wait_responses(IngestWaitResponse),
)
async def upload_documents(
    *,
    name: str,
    request: Request,
    deps: Deps,
    tenant: Tenant,
    wait: Wait,
    expires_at: ExpiresAt = None,
    ttl_s: TtlS = None,
) -> IngestAcceptedResponse | Response:
    """Upload files, an archive, JSON records or BEIR JSONL; 202 with the job id (with
    ``wait=true``: the job too, once it is terminal, see services/api/waiting.py)."""
    expiry = upload_expiry(expires_at, ttl_s, now=time.time(), max_ttl_s=deps.api.max_ttl_s)
    async with waiting(request, deps, tenant, wait):
        await in_thread(deps.state.get_collection, tenant, name)
        accepted = await _upload(request, deps, tenant, name, kind="ingest", expires_at=expiry)
        return await finish_upload(request, deps, tenant, accepted, wait)


@router.put(
    "/{doc_id:path}",
    status_code=202,
    response_model=IngestAcceptedResponse,
    responses=wait_responses(IngestWaitResponse),
)
async def replace_document(
    *,
    name: str,
    doc_id: str,
    request: Request,
    deps: Deps,
    tenant: Tenant,
    wait: Wait,
    expires_at: ExpiresAt = None,
    ttl_s: TtlS = None,
) -> IngestAcceptedResponse | Response:
    """Replace one document (a file, or JSON ``{"text", "title", "metadata"}``)."""
    check_document_id(doc_id)
    expiry = upload_expiry(expires_at, ttl_s, now=time.time(), max_ttl_s=deps.api.max_ttl_s)
    async with waiting(request, deps, tenant, wait):
        await in_thread(deps.state.get_collection, tenant, name)
        accepted = await _upload(
            request, deps, tenant, name, kind="replace", doc_id=doc_id, expires_at=expiry
        )
        return await finish_upload(request, deps, tenant, accepted, wait)


async def _upload(
    request: Request,
    deps: ApiDeps,
    tenant: str,
    name: str,
    *,
    kind: str,
    doc_id: str | None = None,
    expires_at: float | None = None,
) -> IngestAcceptedResponse:
    """Stage the request's blobs, then accept them; a refused request leaves no blob."""
    # A full CPU pool, or a tenant at its uploads in flight, refuses before the body is read.
    deps.pools.cpu.check()
    with deps.uploads.hold(tenant):
        staging = deps.blobs.staging()
        try:
            items = await _items(request, deps, staging, doc_id=doc_id)
            return await in_thread(
                _accept, deps, tenant, name, items, staging, kind=kind, expires_at=expires_at
            )
        finally:
            await in_thread(staging.discard)


def _accept(
    deps: ApiDeps,
    tenant: str,
    name: str,
    items: list[UploadItem],
    staging: BlobStaging,
    *,
    kind: str,
    expires_at: float | None,
) -> IngestAcceptedResponse:
    out: Accepted = accept(
        deps.state,
        deps.blobs,
        deps.queue,
        deps.accept_limits,
        tenant=tenant,
        collection=name,
        items=items,
        kind=kind,
        staging=staging,
        expires_at=expires_at,
    )
    return IngestAcceptedResponse(
        job_id=out.job_id, documents=out.documents, unchanged=out.unchanged, failed=out.failed
    )


@router.get("")
async def list_documents(
    *,
    name: str,
    deps: Deps,
    tenant: Tenant,
    status: DocStatus | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DocumentsPageResponse:
    """A page of documents, in upload order, optionally by status (expired ones not yet
    swept are listed, marked ``expired``)."""
    await in_thread(deps.state.get_collection, tenant, name)
    docs, total = await in_thread(
        deps.state.list_documents, tenant, name, status=status, offset=offset, limit=limit
    )
    return DocumentsPageResponse(
        documents=[_doc(d) for d in docs], total=total, offset=offset, limit=limit
    )


@router.get("/{doc_id:path}")
async def get_document(name: str, doc_id: str, deps: Deps, tenant: Tenant) -> DocumentResponse:
    """One document's state (an expired one not yet swept: ``expired`` true)."""
    await in_thread(deps.state.get_collection, tenant, name)
    return _doc(await in_thread(deps.state.get_document, tenant, name, doc_id))


@router.delete("/{doc_id:path}", status_code=202)
async def delete_document(name: str, doc_id: str, deps: Deps, tenant: Tenant) -> JSONResponse:
    """Delete a document: at once it is neither listed nor returned; its chunks follow."""
    await in_thread(
        delete_doc, deps.state, deps.queue, tenant=tenant, collection=name, doc_id=doc_id
    )
    return JSONResponse({"document_id": doc_id, "status": "deleted"}, status_code=202)


def _doc(d: DocumentRecord) -> DocumentResponse:
    error = None
    if d.error_reason:
        error = {"reason": d.error_reason, "message": d.error_message or ""}
    return DocumentResponse(
        id=d.id,
        version=d.version,
        status=d.status.value,
        job_id=d.job_id,
        content_hash=d.content_hash,
        source=d.source,
        title=d.title,
        size=d.size,
        pages=d.pages,
        chunk_count=d.chunk_count,
        chunks_embedded=max(0, d.chunk_count - d.chunks_reused),
        chunks_reused=d.chunks_reused,
        error=error,
        metadata=d.metadata,
        updated_at=d.updated_at,
        expires_at=None if d.expires_at is None else expires_iso(d.expires_at),
        expired=expired(d.expires_at, time.time()),
    )
