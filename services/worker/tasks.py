"""Thin Celery tasks: take ids, call one ``ingest`` function, return a small summary.

``sieve.ingest_document`` runs in the worker processes (parse → chunk → embed) and sends
its points as a ``sieve.store_write`` task; that one runs where the store lives (the API
process in embedded mode, any worker in compose mode). Every step is idempotent: point
ids are deterministic and an unchanged content hash is a no-op, so redelivery after a
crash only redoes work, it never duplicates or loses a document.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from core.errors import SieveError, UpstreamUnavailable
from core.logs import log_context
from core.types import ChunkPoint
from ingest.documents import ParseFailure
from ingest.pipeline import PreparedDocument
from services.state import TERMINAL, CollectionRecord, DocStatus, DocumentRecord
from services.worker.context import StoreOwner, WorkerContext, store_owner, worker_context

__all__ = ["ingest_document", "store_write"]

log = logging.getLogger("sieve.worker")

# Celery-level retries of a whole document after the embeddings client's own per-batch
# retries gave up (the hub was down for minutes, not seconds).
_INGEST_RETRIES = 5


@shared_task(
    name="sieve.ingest_document",
    bind=True,
    acks_late=True,
    autoretry_for=(UpstreamUnavailable,),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=_INGEST_RETRIES,
)
def ingest_document(self: Task[Any, Any], job_id: str, doc_id: str) -> dict[str, Any]:
    """Parse, chunk and embed one document, then hand its points to the store owner."""
    ctx = worker_context()
    with log_context(job_id=job_id, document_id=doc_id, task_id=self.request.id):
        return _ingest(ctx, job_id, doc_id, attempt=self.request.retries)


@dataclass(frozen=True)
class _Doc:
    """The document a task works on, and how to record its progress."""

    ctx: WorkerContext
    tenant: str
    coll: str
    job_id: str
    doc_id: str

    def mark(self, status: DocStatus, **fields: Any) -> None:
        self.ctx.state.update_document(
            self.tenant, self.coll, self.doc_id, job_id=self.job_id, status=status, **fields
        )
        self.ctx.state.set_job_doc(self.job_id, self.doc_id, status)

    def fail(self, reason: str, message: str) -> dict[str, Any]:
        log.info("document failed", extra={"reason": reason})
        self.mark(DocStatus.FAILED, error_reason=reason, error_message=message)
        return {"status": "failed", "reason": reason}


def _ingest(ctx: WorkerContext, job_id: str, doc_id: str, *, attempt: int) -> dict[str, Any]:
    job = ctx.state.load_job(job_id)
    doc = None if job is None else ctx.state.find_document(job.tenant, job.collection, doc_id)
    if job is None or doc is None or doc.job_id != job_id:
        # Deleted, or re-uploaded by a newer job that owns it now.
        return {"status": "skipped", "reason": "superseded"}
    if doc.status in TERMINAL:
        return {"status": "skipped", "reason": f"already_{doc.status.value}"}
    ref = _Doc(ctx, job.tenant, job.collection, job_id, doc_id)
    if job.cancelled:
        ref.mark(DocStatus.CANCELLED)
        return {"status": "cancelled"}
    collection = ctx.state.get_collection(job.tenant, job.collection)
    ref.mark(DocStatus.PARSING, attempts=attempt + 1)
    prepared = _prepare(ref, doc, collection, last_attempt=attempt >= _INGEST_RETRIES)
    if isinstance(prepared, dict):
        return prepared
    ref.mark(DocStatus.WRITING, title=prepared.title, pages=prepared.pages)
    store_write.delay(
        {
            "op": "replace_document",
            "tenant": job.tenant,
            "collection": job.collection,
            "document_id": doc_id,
            "job_id": job_id,
            "content_hash": doc.content_hash,
            "points": [p.model_dump(mode="json") for p in prepared.points],
        }
    )
    return {"status": "embedded", "chunks": len(prepared.points)}


def _prepare(
    ref: _Doc, doc: DocumentRecord, collection: CollectionRecord, *, last_attempt: bool
) -> PreparedDocument | dict[str, Any]:
    """Parse, chunk and embed; every way out but success leaves the document's state set."""
    ctx = ref.ctx
    try:
        chunked = ctx.pipeline.extract_and_chunk(
            ctx.blobs.get(doc.blob_key or ""),
            source=doc.source or doc.id,
            record=doc.kind == "record",
            document_id=doc.id,
        )
        if isinstance(chunked, ParseFailure):
            return ref.fail(chunked.reason.value, chunked.message)
        ref.mark(DocStatus.EMBEDDING)
        avg_len = ctx.state.bm25_avg_len(ref.tenant, ref.coll, chunked.bm25_lengths)
        return ctx.pipeline.embed(
            chunked,
            store_name=collection.store_name,
            document_id=doc.id,
            embedding_model=collection.embedding_model,
            dimension=collection.dimension,
            bm25_avg_len=avg_len,
        )
    except UpstreamUnavailable as exc:
        if last_attempt:
            return ref.fail(exc.code, f"model hub unavailable after retries: {exc.message}")
        # Back to the queue: Celery retries with backoff; the state says why it waits.
        ref.mark(DocStatus.QUEUED)
        raise
    except SieveError as exc:
        return ref.fail(exc.code, exc.message)
    except SoftTimeLimitExceeded:
        return ref.fail("time_limit", "the document took longer than the task time limit")
    except Exception as exc:
        # Never leave a document "in progress" on a bug: say so, with the error's type.
        log.exception("document crashed the pipeline")
        return ref.fail("internal_error", f"indexing failed: {type(exc).__name__}")


@shared_task(
    name="sieve.store_write",
    acks_late=True,
    autoretry_for=(UpstreamUnavailable,),
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=10,
)
def store_write(op: dict[str, Any]) -> dict[str, Any]:
    """Apply one write to the chunk store (run by the store's owner)."""
    owner = store_owner()
    with log_context(job_id=op.get("job_id"), document_id=op.get("document_id")):
        if op["op"] == "replace_document":
            return _replace(owner, op)
        if op["op"] == "delete_document":
            return _delete(owner, op)
    log.error("unknown store write", extra={"op": op.get("op")})
    return {"status": "ignored"}


def _replace(owner: StoreOwner, op: dict[str, Any]) -> dict[str, Any]:
    tenant, coll, doc_id, job_id = op["tenant"], op["collection"], op["document_id"], op["job_id"]
    doc = owner.state.find_document(tenant, coll, doc_id)
    if doc is None or doc.job_id != job_id or doc.status in TERMINAL:
        return {"status": "skipped", "reason": "superseded"}
    collection = owner.state.get_collection(tenant, coll)
    points = [ChunkPoint.model_validate(p) for p in op["points"]]
    # New chunks first, then the stale tail of an older, longer version: a reader never
    # sees the document vanish, and a crash in between is repaired by redelivery.
    owner.store.upsert(collection.store_name, points)
    owner.delete_stale(collection.store_name, doc_id, keep=len(points))
    owner.state.update_document(
        tenant,
        coll,
        doc_id,
        job_id=job_id,
        status=DocStatus.INDEXED,
        chunk_count=len(points),
        indexed_hash=op.get("content_hash"),
        error_reason=None,
        error_message=None,
    )
    owner.state.set_job_doc(job_id, doc_id, DocStatus.INDEXED)
    return {"status": "indexed", "chunks": len(points)}


def _delete(owner: StoreOwner, op: dict[str, Any]) -> dict[str, Any]:
    tenant, coll, doc_id = op["tenant"], op["collection"], op["document_id"]
    collection = owner.state.get_collection(tenant, coll)
    owner.store.delete_document(collection.store_name, doc_id)
    doc = owner.state.find_document(tenant, coll, doc_id)
    if doc is not None and doc.status is DocStatus.DELETED:
        owner.state.remove_document(tenant, coll, doc_id)
    if op.get("job_id"):
        owner.state.set_job_doc(op["job_id"], doc_id, DocStatus.DELETED)
    return {"status": "deleted"}
