"""Accepting an upload: blobs saved, documents versioned and queued, in that order.

Order matters for "no accepted document is ever lost": blobs are written (fsynced) first,
then the job and its documents in one atomic step, then the tasks are queued, and only
then does the caller answer 202. If the process dies before queueing, the recovery pass
finds the queued versions without a message and queues them again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from core.batching import bounded_batches
from core.errors import InvalidInput, PayloadTooLarge
from core.ids import document_id_problem, failed_entry_id
from indexing.messages import DocVersion, IngestTask
from indexing.queue import TaskQueue
from indexing.records import DocStatus, DocumentRecord, JobRecord
from indexing.state_store import NewDocument, StateStore, TenantQuota
from ingest.archives import (
    ArchiveRefused,
    ExpansionBudget,
    ExpansionRefused,
    safe_member_path,
    stream_archive,
)
from ingest.blob_store import BlobStaging, BlobStore, blob_key
from ingest.detect import ARCHIVE_TYPES, detect_type
from ingest.documents import ExtractedDocument, FailureReason, ParseFailure, ParseOutcome
from ingest.limits import IngestLimits
from ingest.records import iter_jsonl_records

__all__ = [
    "AcceptLimits",
    "Accepted",
    "UploadItem",
    "accept",
    "check_document_id",
    "items_from_records",
    "record_blob",
    "stage_file",
    "stage_items",
    "task_batches",
]

_JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class AcceptLimits:
    """How much one request may hold and how its documents are grouped into tasks."""

    max_documents: int
    task_batch_docs: int
    task_batch_bytes: int
    # The tenant's documents and stored bytes over all its collections (None: unbounded).
    quota: TenantQuota | None = None


@dataclass
class UploadItem:
    """One document to queue (``data`` is the blob, or ``blob_key`` names it once it is
    staged and its bytes are no longer held), or one that already failed.

    A failed entry's id is made safe here, wherever the item was built: a refused name
    (``../x``) stays in ``source`` only.
    """

    doc_id: str
    source: str
    kind: str = "file"
    data: bytes = b""
    metadata: dict[str, Any] = field(default_factory=dict)
    failure: ParseFailure | None = None
    blob_key: str | None = None
    size: int = 0

    @property
    def nbytes(self) -> int:
        """The document's size in bytes (staged or held)."""
        return self.size if self.blob_key is not None else len(self.data)

    def __post_init__(self) -> None:
        if self.failure is not None:
            self.doc_id = failed_entry_id(self.doc_id)


@dataclass(frozen=True)
class Accepted:
    """What the upload did: the job, the queued documents, the unchanged and the failed."""

    job_id: str
    documents: list[str]
    unchanged: list[str]
    failed: dict[str, str]


def check_document_id(doc_id: str) -> str:
    """Refuse an id that could not be addressed later (``InvalidInput``); return it."""
    problem = document_id_problem(doc_id)
    if problem is not None:
        raise InvalidInput(f"{problem} (got {doc_id[:80]!r})", code="invalid_document_id")
    return doc_id


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


def stage_items(items: list[UploadItem], staging: BlobStaging) -> list[UploadItem]:
    """Stage every held blob of ``items`` and drop its bytes (records, replaced files)."""
    for item in items:
        if item.failure is None and item.blob_key is None:
            item.blob_key, item.size, item.data = staging.put(item.data), len(item.data), b""
    return items


def stage_file(
    data: bytes,
    filename: str,
    limits: IngestLimits,
    staging: BlobStaging,
    budget: ExpansionBudget,
    *,
    doc_id: str | None = None,
) -> list[UploadItem]:
    """One uploaded file as staged items: a document, a JSONL collection, or an archive.

    An archive's members are staged one by one as they are read (never all held), charged
    to ``budget``, which all archives of the request share. An archive over a budget of its
    own is one failed item (its staged members released); over ``budget``, the request is
    refused.

    Raises:
        PayloadTooLarge: a non-archive file over the per-file limit.
        ExpansionRefused: the request's archives together are over ``budget``.
    """
    name = safe_member_path(filename) or "upload"
    kind = detect_type(data, name).type
    if len(data) > limits.max_file_bytes and kind not in ARCHIVE_TYPES:
        raise PayloadTooLarge(
            f"{name}: {len(data)} bytes; the per-file limit is {limits.max_file_bytes}"
        )
    if name.lower().endswith(_JSONL_SUFFIXES) and doc_id is None:
        records = items_from_records(iter_jsonl_records(data.splitlines(), limits, source=name))
        return stage_items(records, staging)
    if kind not in ARCHIVE_TYPES or doc_id is not None:
        return stage_items([UploadItem(doc_id=doc_id or name, source=name, data=data)], staging)
    items: list[UploadItem] = []
    try:
        for member in stream_archive(data, name, limits, budget=budget):
            if isinstance(member, ParseFailure):
                items.append(UploadItem(doc_id=member.source, source=member.source, failure=member))
            else:
                key = staging.put(member.data)
                items.append(
                    UploadItem(
                        doc_id=member.path, source=member.path, blob_key=key, size=len(member.data)
                    )
                )
    except (ArchiveRefused, ExpansionRefused) as exc:
        for item in items:
            if item.blob_key is not None:
                staging.release(item.blob_key)
        if isinstance(exc, ExpansionRefused):
            raise
        failure = ParseFailure(source=name, reason=FailureReason(exc.code), message=exc.detail)
        return [UploadItem(doc_id=name, source=name, failure=failure)]
    return items


def accept(
    state: StateStore,
    blobs: BlobStore,
    queue: TaskQueue,
    limits: AcceptLimits,
    *,
    tenant: str,
    collection: str,
    items: list[UploadItem],
    kind: str = "ingest",
    staging: BlobStaging | None = None,
    expires_at: float | None = None,
) -> Accepted:
    """Save, record and queue ``items``; unchanged documents are a no-op.

    Items with a ``blob_key`` were staged in ``staging``, which is committed once the
    request is valid. Everything is validated before the first write: a refused request
    leaves no trace (the caller discards ``staging`` then).

    Every document of the upload (unchanged ones too) takes ``expires_at`` (Unix seconds),
    or when it is None the collection's ``ttl_s`` from now, or no expiry.
    """
    coll = state.get_collection(tenant, collection)
    incarnation = coll.incarnation
    if expires_at is None and coll.ttl_s is not None:
        expires_at = time.time() + coll.ttl_s
    if not items:
        raise InvalidInput("the upload holds no documents", code="empty_upload")
    if len(items) > limits.max_documents:
        raise PayloadTooLarge(
            f"{len(items)} documents in one request; the limit is {limits.max_documents}"
        )
    for item in items:
        if item.failure is None:
            check_document_id(item.doc_id)
    _refuse_duplicate_ids(items)
    job = JobRecord(id=state.new_job_id(), tenant=tenant, collection=collection, kind=kind)
    accepted_ids = {i.doc_id for i in items if i.failure is None}
    docs: list[NewDocument] = []
    failed: dict[str, str] = {}
    sizes: dict[str, int] = {}
    held = [item for item in items if item.failure is None and item.blob_key is None]
    # Blob keys are the content's sha256 (the BlobStore contract): known before any write,
    # so the quota is checked before the first one.
    keys = {i.doc_id: blob_key(i.data) for i in held}
    keys |= {i.doc_id: i.blob_key for i in items if i.failure is None and i.blob_key is not None}
    for item in items:
        if item.failure is not None:
            if item.doc_id in accepted_ids:
                # e.g. a repeated id in a JSONL file: the first record stands, this one fails.
                failed[item.source] = item.failure.reason.value
                continue
            failed[item.doc_id] = item.failure.reason.value
            record = DocumentRecord(
                id=item.doc_id,
                job_id=job.id,
                kind=item.kind,
                status=DocStatus.FAILED,
                source=item.source,
                error_reason=item.failure.reason.value,
                error_message=item.failure.message,
                expires_at=expires_at,
            )
            docs.append(NewDocument(record, (item.failure.reason.value, item.failure.message)))
            continue
        key = keys[item.doc_id]
        sizes[item.doc_id] = item.nbytes
        record = DocumentRecord(
            id=item.doc_id,
            job_id=job.id,
            kind=item.kind,
            content_hash=key,
            blob_key=key,
            source=item.source,
            size=item.nbytes,
            metadata=item.metadata,
            expires_at=expires_at,
        )
        docs.append(NewDocument(record))
    if limits.quota is not None:
        # Refused: nothing written (the caller discards ``staging``).
        state.check_quota(tenant, collection, docs, limits.quota)
    blobs.put_many([i.data for i in held])
    if staging is not None:
        staging.commit()
    # Checks atomically that the collection is still the one read above: an upload racing
    # its deletion is refused (404), never recorded in it or in a new one of the same name.
    versions = state.accept(
        tenant, collection, job, docs, incarnation=incarnation, quota=limits.quota
    )
    queued = [
        DocVersion(id=d.record.id, version=versions[d.record.id])
        for d in docs
        if d.record.status is DocStatus.QUEUED and versions.get(d.record.id)
    ]
    unchanged = [
        d.record.id
        for d in docs
        if d.record.status is DocStatus.QUEUED and not versions.get(d.record.id)
    ]
    for batch in task_batches(queued, sizes, limits.task_batch_docs, limits.task_batch_bytes):
        queue.send_ingest(
            IngestTask(
                tenant=tenant,
                collection=collection,
                job_id=job.id,
                docs=batch,
                incarnation=incarnation,
            )
        )
    return Accepted(
        job_id=job.id, documents=[d.id for d in queued], unchanged=unchanged, failed=failed
    )


def task_batches(
    docs: list[DocVersion], sizes: dict[str, int], max_docs: int, max_bytes: int
) -> list[list[DocVersion]]:
    """Group documents, in order, into task batches bounded by count and total size."""
    runs = bounded_batches(
        [sizes.get(d.id, 0) for d in docs], max_count=max_docs, max_total=max_bytes
    )
    return [[docs[i] for i in run] for run in runs]


def _refuse_duplicate_ids(items: list[UploadItem]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.doc_id in seen and item.failure is None:
            raise InvalidInput(
                f"document id {item.doc_id!r} appears twice in one upload", code="duplicate_id"
            )
        seen.add(item.doc_id)
