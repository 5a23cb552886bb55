"""Turning an upload into saved blobs, document records, a job and queued tasks.

Order matters for "no accepted document is ever lost": blobs are written (fsynced) first,
then the document and job records, then the tasks are queued, and only then does the API
answer 202. If the process dies before queueing, the reaper finds the queued documents
and queues them again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from core.batching import bounded_batches
from core.errors import InvalidInput, PayloadTooLarge
from indexing.records import DocStatus, DocumentRecord, JobRecord
from ingest.archives import iter_archive, safe_member_path
from ingest.detect import ARCHIVE_TYPES, detect_type
from ingest.documents import ExtractedDocument, ParseFailure, ParseOutcome
from ingest.limits import IngestLimits
from ingest.records import iter_jsonl_records
from services.api.deps import ApiDeps
from services.api.schemas import IngestAcceptedResponse

__all__ = [
    "UploadItem",
    "accept",
    "items_from_file",
    "items_from_records",
    "record_blob",
    "task_batches",
]

_JSONL_SUFFIXES = (".jsonl", ".ndjson")
# A document in one of these states is processed again even when its content is unchanged.
_REDO = frozenset({DocStatus.FAILED, DocStatus.CANCELLED, DocStatus.DELETED})


@dataclass
class UploadItem:
    """One document to queue (``data`` is the blob), or one that already failed."""

    doc_id: str
    source: str
    kind: str = "file"
    data: bytes = b""
    metadata: dict[str, Any] = field(default_factory=dict)
    failure: ParseFailure | None = None


def record_blob(doc: ExtractedDocument) -> bytes:
    """A record's canonical bytes: same text, title and metadata → same content hash."""
    body = {
        "id": doc.document_id,
        "title": doc.title,
        "text": doc.text,
        "metadata": doc.metadata,
    }
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def items_from_records(outcomes: Iterable[ParseOutcome]) -> list[UploadItem]:
    """JSON or JSONL records (already validated one by one) as upload items."""
    items: list[UploadItem] = []
    for n, out in enumerate(outcomes):
        if isinstance(out, ParseFailure):
            doc_id = out.document_id or f"invalid:{out.source or n}"
            items.append(UploadItem(doc_id=doc_id, source=out.source, failure=out))
        else:
            assert out.document_id is not None  # records always carry their id
            items.append(
                UploadItem(
                    doc_id=out.document_id,
                    source=out.source,
                    kind="record",
                    data=record_blob(out),
                    metadata=out.metadata,
                )
            )
    return items


def items_from_file(
    data: bytes, filename: str, limits: IngestLimits, *, doc_id: str | None = None
) -> list[UploadItem]:
    """One uploaded file: a document, a JSONL collection, or an archive of documents."""
    name = safe_member_path(filename) or "upload"
    if len(data) > limits.max_file_bytes and detect_type(data, name).type not in ARCHIVE_TYPES:
        raise PayloadTooLarge(
            f"{name}: {len(data)} bytes; the per-file limit is {limits.max_file_bytes}"
        )
    if name.lower().endswith(_JSONL_SUFFIXES) and doc_id is None:
        return items_from_records(iter_jsonl_records(data.splitlines(), limits, source=name))
    if detect_type(data, name).type in ARCHIVE_TYPES and doc_id is None:
        items: list[UploadItem] = []
        for member in iter_archive(data, name, limits):
            if isinstance(member, ParseFailure):
                items.append(UploadItem(doc_id=member.source, source=member.source, failure=member))
            else:
                items.append(UploadItem(doc_id=member.path, source=member.path, data=member.data))
        return items
    return [UploadItem(doc_id=doc_id or name, source=name, data=data)]


def accept(
    deps: ApiDeps, tenant: str, collection: str, items: list[UploadItem], *, kind: str = "ingest"
) -> IngestAcceptedResponse:
    """Save, record and queue ``items``; unchanged documents are a no-op."""
    deps.state.get_collection(tenant, collection)
    if not items:
        raise InvalidInput("the upload holds no documents", code="empty_upload")
    if len(items) > deps.api.max_documents_per_request:
        raise PayloadTooLarge(
            f"{len(items)} documents in one request; the limit is "
            f"{deps.api.max_documents_per_request}"
        )
    _refuse_duplicate_ids(items)
    job_id = deps.state.new_job_id()
    queued: list[DocumentRecord] = []
    records: list[DocumentRecord] = []
    unchanged: list[str] = []
    failed: dict[str, str] = {}
    accepted_ids = {i.doc_id for i in items if i.failure is None}
    # One round trip for the earlier versions, not one per document of a 5,000-line upload.
    previous = {d.id: d for d in deps.state.get_documents(tenant, collection, sorted(accepted_ids))}
    for item in items:
        if item.failure is not None:
            if item.doc_id in accepted_ids:
                # e.g. a repeated id in a JSONL file: the first record stands, this one fails.
                failed[item.source] = item.failure.reason.value
                continue
            failed[item.doc_id] = item.failure.reason.value
            records.append(
                DocumentRecord(
                    id=item.doc_id,
                    job_id=job_id,
                    kind=item.kind,
                    status=DocStatus.FAILED,
                    source=item.source,
                    error_reason=item.failure.reason.value,
                    error_message=item.failure.message,
                )
            )
            continue
        blob_key = deps.blobs.put(item.data)
        old = previous.get(item.doc_id)
        if old is not None and old.content_hash == blob_key and old.status not in _REDO:
            unchanged.append(item.doc_id)
            continue
        doc = DocumentRecord(
            id=item.doc_id,
            job_id=job_id,
            kind=item.kind,
            content_hash=blob_key,
            blob_key=blob_key,
            source=item.source,
            size=len(item.data),
            metadata=item.metadata,
        )
        queued.append(doc)
        records.append(doc)
    job = JobRecord(id=job_id, tenant=tenant, collection=collection, kind=kind)
    deps.state.create_job(job, [r.id for r in records])
    for rec in records:
        if rec.status is DocStatus.FAILED:
            deps.state.set_job_doc(job_id, rec.id, DocStatus.FAILED)
    deps.state.put_documents(tenant, collection, records)
    for batch in task_batches(queued, deps.ingest.task_batch_docs, deps.ingest.task_batch_bytes):
        deps.celery.send_task("sieve.ingest_batch", args=[job_id, batch])
    return IngestAcceptedResponse(
        job_id=job_id, documents=[d.id for d in queued], unchanged=unchanged, failed=failed
    )


def task_batches(docs: list[DocumentRecord], max_docs: int, max_bytes: int) -> list[list[str]]:
    """Group documents, in order, into task batches bounded by count and total size."""
    runs = bounded_batches([d.size for d in docs], max_count=max_docs, max_total=max_bytes)
    return [[docs[i].id for i in run] for run in runs]


def _refuse_duplicate_ids(items: list[UploadItem]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.doc_id in seen and item.failure is None:
            raise InvalidInput(
                f"document id {item.doc_id!r} appears twice in one upload", code="duplicate_id"
            )
        seen.add(item.doc_id)
