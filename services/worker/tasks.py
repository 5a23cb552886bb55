"""Thin Celery tasks: take ids, call one ``ingest`` function, return a small summary.

``sieve.ingest_batch`` runs in the worker processes (parse → chunk → embed) and sends
the points as a ``sieve.store_write`` task; that one runs where the store lives (the API
process in embedded mode, any worker in compose mode). Every step is idempotent: point
ids are deterministic and an unchanged content hash is a no-op, so redelivery after a
crash only redoes work, it never duplicates or loses a document.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from core.errors import SieveError, UpstreamUnavailable
from core.logs import log_context
from core.types import ChunkPoint
from indexing.records import TERMINAL, CollectionRecord, DocStatus, DocumentRecord
from ingest.documents import ParseFailure
from ingest.pipeline import ChunkedDocument, PreparedDocument
from services.worker.context import StoreOwner, WorkerContext, store_owner, worker_context

__all__ = ["ingest_batch", "store_write"]

log = logging.getLogger("sieve.worker")

# Celery-level retries of a whole document after the embeddings client's own per-batch
# retries gave up (the hub was down for minutes, not seconds).
_INGEST_RETRIES = 5


@shared_task(
    name="sieve.ingest_batch",
    bind=True,
    acks_late=True,
    autoretry_for=(UpstreamUnavailable,),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=_INGEST_RETRIES,
)
def ingest_batch(self: Task[Any, Any], job_id: str, doc_ids: list[str]) -> dict[str, int]:
    """Parse, chunk and embed a batch of a job's documents; hand their points to the store.

    Documents are batched so that embedding requests carry many chunks (a hub allowing
    5 requests/s would otherwise cap ingestion at 5 documents/s); every document still
    fails alone, with its own reason.
    """
    ctx = worker_context()
    with log_context(job_id=job_id, task_id=self.request.id, documents=len(doc_ids)):
        return _ingest_batch(ctx, job_id, doc_ids, attempt=self.request.retries)


@dataclass(frozen=True)
class _Doc:
    """One document of the batch, and how to record its progress."""

    ctx: WorkerContext
    tenant: str
    coll: str
    job_id: str
    record: DocumentRecord

    def mark(self, status: DocStatus, **fields: Any) -> None:
        doc_id = self.record.id
        self.ctx.state.update_document(
            self.tenant, self.coll, doc_id, job_id=self.job_id, status=status, **fields
        )
        self.ctx.state.set_job_doc(self.job_id, doc_id, status)

    def fail(self, reason: str, message: str) -> None:
        log.info("document failed", extra={"document_id": self.record.id, "reason": reason})
        self.mark(DocStatus.FAILED, error_reason=reason, error_message=message)


def _ingest_batch(
    ctx: WorkerContext, job_id: str, doc_ids: list[str], *, attempt: int
) -> dict[str, int]:
    summary: Counter[str] = Counter()
    job = ctx.state.load_job(job_id)
    collection = None if job is None else ctx.state.find_collection(job.tenant, job.collection)
    if job is None or collection is None:
        return {"skipped": len(doc_ids)}
    todo: list[_Doc] = []
    for doc_id in doc_ids:
        doc = ctx.state.find_document(job.tenant, job.collection, doc_id)
        if doc is None or doc.job_id != job_id or doc.status in TERMINAL:
            # Deleted, finished by an earlier delivery, or re-uploaded by a newer job.
            summary["skipped"] += 1
            continue
        ref = _Doc(ctx, job.tenant, job.collection, job_id, doc)
        if job.cancelled:
            ref.mark(DocStatus.CANCELLED)
            summary["cancelled"] += 1
            continue
        todo.append(ref)
    chunked: list[tuple[_Doc, ChunkedDocument]] = []
    for ref in todo:
        ref.mark(DocStatus.PARSING, attempts=attempt + 1)
        out = _extract(ref)
        if out is None:
            summary["failed"] += 1
        else:
            chunked.append((ref, out))
    if not chunked:
        return dict(summary)
    for ref, _ in chunked:
        ref.mark(DocStatus.EMBEDDING)
    lengths = [n for _, c in chunked for n in c.bm25_lengths]
    avg_len = ctx.state.bm25_avg_len(job.tenant, job.collection, lengths)
    prepared = _embed(chunked, collection, avg_len, last_attempt=attempt >= _INGEST_RETRIES)
    summary["failed"] += len(chunked) - len(prepared)
    if prepared:
        for ref, prep in prepared:
            ref.mark(DocStatus.WRITING, title=prep.title, pages=prep.pages)
        store_write.delay(
            {
                "op": "replace_documents",
                "tenant": job.tenant,
                "collection": job.collection,
                "job_id": job_id,
                "documents": [
                    {
                        "document_id": ref.record.id,
                        "content_hash": ref.record.content_hash,
                        "points": [p.model_dump(mode="json") for p in prep.points],
                    }
                    for ref, prep in prepared
                ],
            }
        )
        summary["embedded"] += len(prepared)
    return dict(summary)


def _extract(ref: _Doc) -> ChunkedDocument | None:
    """Parse and chunk one document; None when it failed (its state says why)."""
    doc = ref.record
    try:
        out = ref.ctx.pipeline.extract_and_chunk(
            ref.ctx.blobs.get(doc.blob_key or ""),
            source=doc.source or doc.id,
            record=doc.kind == "record",
            document_id=doc.id,
        )
    except SieveError as exc:
        ref.fail(exc.code, exc.message)
        return None
    except SoftTimeLimitExceeded:
        ref.fail("time_limit", "parsing took longer than the task time limit")
        return None
    except Exception as exc:
        # Never leave a document "in progress" on a bug: say so, with the error's type.
        log.exception("document crashed the parser", extra={"document_id": doc.id})
        ref.fail("internal_error", f"parsing failed: {type(exc).__name__}")
        return None
    if isinstance(out, ParseFailure):
        ref.fail(out.reason.value, out.message)
        return None
    return out


def _embed(
    chunked: list[tuple[_Doc, ChunkedDocument]],
    collection: CollectionRecord,
    avg_len: float,
    *,
    last_attempt: bool,
) -> list[tuple[_Doc, PreparedDocument]]:
    """Embed every chunk of the batch together; a refusal is retried document by document."""
    pipeline = chunked[0][0].ctx.pipeline

    def run(items: list[tuple[_Doc, ChunkedDocument]]) -> list[PreparedDocument]:
        return pipeline.embed_many(
            [(c, ref.record.id) for ref, c in items],
            store_name=collection.store_name,
            embedding_model=collection.embedding_model,
            dimension=collection.dimension,
            bm25_avg_len=avg_len,
        )

    try:
        return list(zip([ref for ref, _ in chunked], run(chunked), strict=True))
    except UpstreamUnavailable as exc:
        if last_attempt:
            for ref, _ in chunked:
                ref.fail(exc.code, f"model hub unavailable after retries: {exc.message}")
            return []
        # Back to the queue: Celery retries the batch with backoff; the state says why.
        for ref, _ in chunked:
            ref.mark(DocStatus.QUEUED)
        raise
    except SieveError as exc:
        if len(chunked) == 1:
            chunked[0][0].fail(exc.code, exc.message)
            return []
        # The hub refused the batch: find the document it refuses, keep the others.
        out: list[tuple[_Doc, PreparedDocument]] = []
        for item in chunked:
            out += _embed([item], collection, avg_len, last_attempt=last_attempt)
        return out
    except SoftTimeLimitExceeded:
        for ref, _ in chunked:
            ref.fail("time_limit", "embedding took longer than the task time limit")
        return []
    except Exception as exc:
        log.exception("batch crashed the embedder")
        for ref, _ in chunked:
            ref.fail("internal_error", f"embedding failed: {type(exc).__name__}")
        return []


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
    with log_context(job_id=op.get("job_id")):
        if op["op"] == "replace_documents":
            return _replace(owner, op)
        if op["op"] == "delete_document":
            return _delete(owner, op)
    log.error("unknown store write", extra={"op": op.get("op")})
    return {"status": "ignored"}


def _replace(owner: StoreOwner, op: dict[str, Any]) -> dict[str, Any]:
    tenant, coll, job_id = op["tenant"], op["collection"], op["job_id"]
    collection = owner.state.find_collection(tenant, coll)
    if collection is None:
        return {"status": "skipped", "reason": "collection_gone"}
    live: list[dict[str, Any]] = []
    for item in op["documents"]:
        doc = owner.state.find_document(tenant, coll, item["document_id"])
        if doc is not None and doc.job_id == job_id and doc.status not in TERMINAL:
            live.append(item)
    points = [ChunkPoint.model_validate(p) for item in live for p in item["points"]]
    # New chunks first, then the stale tail of an older, longer version: a reader never
    # sees a document vanish, and a crash in between is repaired by redelivery.
    owner.store.upsert(collection.store_name, points)
    for item in live:
        doc_id, count = item["document_id"], len(item["points"])
        owner.delete_stale(collection.store_name, doc_id, keep=count)
        owner.state.update_document(
            tenant,
            coll,
            doc_id,
            job_id=job_id,
            status=DocStatus.INDEXED,
            chunk_count=count,
            indexed_hash=item.get("content_hash"),
            error_reason=None,
            error_message=None,
        )
        owner.state.set_job_doc(job_id, doc_id, DocStatus.INDEXED)
    return {"status": "indexed", "documents": len(live), "chunks": len(points)}


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
