"""``/v1/collections/{name}/documents``: upload (files, archives, JSON, JSONL), list, show,
replace, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from core.errors import InvalidInput, PayloadTooLarge
from indexing.accept import (
    Accepted,
    UploadItem,
    accept,
    check_document_id,
    items_from_file,
    items_from_records,
)
from indexing.changes import delete_document as delete_doc
from indexing.records import DocStatus, DocumentRecord
from ingest.documents import ParseFailure, ParseOutcome
from ingest.limits import IngestLimits
from ingest.records import iter_jsonl_records, loads_json, read_json_records, record_to_document
from services.api.deps import ApiDeps, Deps, Tenant, in_thread
from services.api.schemas import DocumentResponse, DocumentsPageResponse, IngestAcceptedResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1/collections/{name}/documents", tags=["documents"])

_JSON_TYPES = ("application/json",)
_JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines")
_MULTIPART = "multipart/form-data"


def _limits(deps: ApiDeps) -> IngestLimits:
    return IngestLimits(max_file_bytes=deps.ingest.max_file_bytes, max_pages=deps.ingest.max_pages)


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


async def _items(request: Request, deps: ApiDeps, *, doc_id: str | None = None) -> list[UploadItem]:
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    limits = _limits(deps)
    if ctype == _MULTIPART:
        declared = int(request.headers.get("content-length") or 0)
        if declared > deps.api.max_upload_bytes:
            raise PayloadTooLarge(
                f"request body of {declared} bytes; the limit is {deps.api.max_upload_bytes}"
            )
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
            items: list[UploadItem] = []
            for upload in files:
                data = await upload.read()
                items += await in_thread(
                    items_from_file, data, upload.filename or "upload", limits, doc_id=doc_id
                )
            return items
        finally:
            await form.close()
    body = await _body(request, deps)
    if ctype in _JSON_TYPES:
        if doc_id is not None:
            return items_from_records([_replacement_record(body, doc_id, limits)])
        return items_from_records(await in_thread(read_json_records, body, limits))
    if ctype in _JSONL_TYPES and doc_id is None:
        return items_from_records(
            await in_thread(lambda: list(iter_jsonl_records(body.splitlines(), limits)))
        )
    raise InvalidInput(
        f"unsupported Content-Type {ctype or '(none)'!r}: send multipart/form-data files "
        '(documents or a zip/tar archive), application/json {"documents": [...]}, or '
        "application/x-ndjson lines in the BEIR layout",
        code="unsupported_media_type",
    )


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


@router.post("", status_code=202)
async def upload_documents(
    name: str, request: Request, deps: Deps, tenant: Tenant
) -> IngestAcceptedResponse:
    """Upload files, an archive, JSON records or BEIR JSONL; 202 with the job id."""
    async with deps.uploads.hold(tenant):  # before the body is read
        await in_thread(deps.state.get_collection, tenant, name)
        items = await _items(request, deps)
        return await in_thread(_accept, deps, tenant, name, items, "ingest")


@router.put("/{doc_id:path}", status_code=202)
async def replace_document(
    *, name: str, doc_id: str, request: Request, deps: Deps, tenant: Tenant
) -> IngestAcceptedResponse:
    """Replace one document (a file, or JSON ``{"text", "title", "metadata"}``)."""
    check_document_id(doc_id)
    async with deps.uploads.hold(tenant):
        await in_thread(deps.state.get_collection, tenant, name)
        items = await _items(request, deps, doc_id=doc_id)
        return await in_thread(_accept, deps, tenant, name, items, "replace")


def _accept(
    deps: ApiDeps, tenant: str, name: str, items: list[UploadItem], kind: str
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
    """A page of documents, in upload order, optionally by status."""
    await in_thread(deps.state.get_collection, tenant, name)
    docs, total = await in_thread(
        deps.state.list_documents, tenant, name, status=status, offset=offset, limit=limit
    )
    return DocumentsPageResponse(
        documents=[_doc(d) for d in docs], total=total, offset=offset, limit=limit
    )


@router.get("/{doc_id:path}")
async def get_document(name: str, doc_id: str, deps: Deps, tenant: Tenant) -> DocumentResponse:
    """One document's state."""
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
        error=error,
        metadata=d.metadata,
        updated_at=d.updated_at,
    )
