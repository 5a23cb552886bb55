"""The indexing runner: parse → chunk → embed a task's documents, hand the points on.

Each step is a guarded transition of the document's state (``StateStore.transition``):
the runner first claims the version it was sent for, then moves it only while that
version is current and its claim still holds. A document deleted, replaced or requeued
meanwhile is simply dropped from the batch; nothing the runner does can undo a newer
change. Documents are batched so that embedding requests carry many chunks, and each one
still fails alone, with its own reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from core.errors import SieveError, UpstreamUnavailable
from indexing.heartbeat import Heartbeat
from indexing.messages import IngestTask, ReplaceWrite, WrittenDocument
from indexing.queue import TaskQueue
from indexing.records import CollectionRecord, DocStatus, DocumentRecord
from indexing.reuse import ChunkManifests, plan_reuse, vector_identity
from indexing.state_store import KEEP, Owner, StateStore
from ingest.blob_store import BlobStore
from ingest.documents import ParseFailure
from ingest.pipeline import ChunkedDocument, PreparedDocument

__all__ = ["IndexingRunner", "Pipeline"]

log = logging.getLogger("sieve.indexing")


class Pipeline(Protocol):
    """What the runner needs of ``ingest.pipeline.DocumentPipeline``."""

    def extract_and_chunk(
        self, data: bytes, *, source: str, record: bool, document_id: str
    ) -> ChunkedDocument | ParseFailure:
        """Parse and chunk one document."""
        ...

    def embed_many(
        self,
        items: list[tuple[ChunkedDocument, str]],
        *,
        store_name: str,
        embedding_model: str,
        dimension: int,
        bm25_avg_len: float,
        late_model: str | None = None,
        late_dimension: int | None = None,
        reuse: Mapping[str, Mapping[int, int]] | None = None,
    ) -> list[PreparedDocument]:
        """Embed several documents' chunks together (token vectors too with ``late_model``),
        all but the chunks ``reuse`` names (their stored vectors are taken by the writer)."""
        ...


@dataclass(frozen=True)
class _Claimed:
    record: DocumentRecord
    version: int


class IndexingRunner:
    """Runs ``IngestTask`` messages in one worker process, as owner ``owner``."""

    def __init__(
        self,
        state: StateStore,
        blobs: BlobStore,
        pipeline: Pipeline,
        queue: TaskQueue,
        *,
        heartbeat: Heartbeat,
        interrupts: tuple[type[BaseException], ...] = (),
        reuse_vectors: bool = True,
    ) -> None:
        self._state = state
        # Incremental re-ingest (``indexing.reuse``): off, every chunk is embedded.
        self._manifests = ChunkManifests(state.raw()) if reuse_vectors else None
        self._blobs = blobs
        self._pipeline = pipeline
        self._queue = queue
        self._heartbeat = heartbeat
        self.owner = ""
        # The task runner's time-limit exception (raised into the code at any point).
        self._interrupts = interrupts

    def run(self, task: IngestTask, *, last_attempt: bool) -> dict[str, int]:
        """Process one task under a lease of its own; returns counts by outcome.

        Raises:
            UpstreamUnavailable: the hub is down; the documents are queued again and the
                caller retries the task (unless ``last_attempt``: then they fail).
        """
        with self._heartbeat.lease() as owner:
            self.owner = owner
            return self._run(task, last_attempt=last_attempt)

    def _run(self, task: IngestTask, *, last_attempt: bool) -> dict[str, int]:
        summary: Counter[str] = Counter()
        job = self._state.load_job(task.job_id)
        collection = self._state.find_collection(task.tenant, task.collection)
        if job is None or collection is None or collection.incarnation != task.incarnation:
            # Gone, or deleted and created again since the upload: not this collection's work.
            return {"skipped": len(task.docs)}
        claimed: list[_Claimed] = []
        for doc in task.docs:
            if job.cancelled:
                done = self._to(task, doc.id, doc.version, DocStatus.CANCELLED, DocStatus.QUEUED)
                summary["cancelled" if done else "skipped"] += 1
                continue
            got = self._state.transition(
                task.tenant,
                task.collection,
                doc.id,
                DocStatus.PARSING,
                version=doc.version,
                from_=[DocStatus.QUEUED],
                owner=Owner.claim(self.owner),
            )
            record = (
                self._state.find_document(task.tenant, task.collection, doc.id)
                if got.applied
                else None
            )
            if record is None:
                # Deleted, replaced, done by an earlier delivery, or claimed by a live worker.
                summary["skipped"] += 1
                continue
            claimed.append(_Claimed(record, doc.version))
        chunked: list[tuple[_Claimed, ChunkedDocument]] = []
        for item in claimed:
            out = self._extract(task, item)
            if out is None:
                summary["failed"] += 1
            elif self._hold(task, item, DocStatus.EMBEDDING, DocStatus.PARSING):
                chunked.append((item, out))
            else:
                summary["superseded"] += 1
        if chunked:
            lengths = [n for _, c in chunked for n in c.bm25_lengths]
            avg_len = self._state.bm25_avg_len(task.tenant, task.collection, lengths)
            reuse = self._plan_reuse(task, chunked, collection)
            prepared = self._embed(
                task, chunked, collection, avg_len, reuse, last_attempt=last_attempt
            )
            summary["failed"] += len(chunked) - len(prepared)
            summary["embedded"] += self._hand_over(task, prepared, collection.generation)
        return dict(summary)

    # ------------------------------------------------------------ steps

    def _plan_reuse(
        self,
        task: IngestTask,
        chunked: list[tuple[_Claimed, ChunkedDocument]],
        collection: CollectionRecord,
    ) -> dict[str, dict[int, int]]:
        """Per document, the chunks whose text an earlier stored version already embedded."""
        if self._manifests is None:
            return {}
        ids = [item.record.id for item, _ in chunked]
        try:
            manifests = self._manifests.load(task.tenant, task.collection, ids)
        except SieveError:
            # Only a hint: without it every chunk is embedded, as in a clean ingest.
            log.warning("chunk manifests unavailable", extra={"documents": len(ids)})
            return {}
        identity = vector_identity(collection)
        plans = {
            item.record.id: plan_reuse(
                manifests.get(item.record.id), identity, [c.text for c in doc.chunks]
            )
            for item, doc in chunked
        }
        return {doc_id: plan for doc_id, plan in plans.items() if plan}

    def _extract(self, task: IngestTask, item: _Claimed) -> ChunkedDocument | None:
        """Parse and chunk one document; None when it failed (its state says why)."""
        doc = item.record
        try:
            out = self._pipeline.extract_and_chunk(
                self._blobs.get(doc.blob_key or ""),
                source=doc.source or doc.id,
                record=doc.kind == "record",
                document_id=doc.id,
            )
        except SieveError as exc:
            self._fail(task, item, exc.code, exc.message)
            return None
        except self._interrupts:
            self._fail(task, item, "time_limit", "parsing took longer than the task time limit")
            return None
        except Exception as exc:
            # Never leave a document "in progress" on a bug: say so, with the error's type.
            log.exception("document crashed the parser", extra={"document_id": doc.id})
            self._fail(task, item, "internal_error", f"parsing failed: {type(exc).__name__}")
            return None
        if isinstance(out, ParseFailure):
            self._fail(task, item, out.reason.value, out.message)
            return None
        return out

    def _embed(
        self,
        task: IngestTask,
        chunked: list[tuple[_Claimed, ChunkedDocument]],
        collection: CollectionRecord,
        avg_len: float,
        reuse: dict[str, dict[int, int]],
        *,
        last_attempt: bool,
    ) -> list[tuple[_Claimed, PreparedDocument]]:
        """Embed every chunk of the batch together; a refusal is retried document by document."""
        try:
            prepared = self._pipeline.embed_many(
                [(c, item.record.id) for item, c in chunked],
                store_name=collection.point_ns,
                embedding_model=collection.embedding_model,
                dimension=collection.dimension,
                bm25_avg_len=avg_len,
                late_model=collection.late_model,
                late_dimension=collection.late_dimension,
                reuse=reuse,
            )
            return list(zip([item for item, _ in chunked], prepared, strict=True))
        except UpstreamUnavailable as exc:
            if last_attempt:
                for item, _ in chunked:
                    self._fail(
                        task, item, exc.code, f"model hub unavailable after retries: {exc.message}"
                    )
                return []
            # Back to the queue, claim released: the caller retries the task with backoff.
            for item, _ in chunked:
                self._release(task, item)
            raise
        except SieveError as exc:
            if len(chunked) == 1:
                self._fail(task, chunked[0][0], exc.code, exc.message)
                return []
            # The hub refused the batch: find the document it refuses, keep the others.
            out: list[tuple[_Claimed, PreparedDocument]] = []
            for pair in chunked:
                out += self._embed(
                    task, [pair], collection, avg_len, reuse, last_attempt=last_attempt
                )
            return out
        except self._interrupts:
            for item, _ in chunked:
                self._fail(task, item, "time_limit", "embedding took longer than the time limit")
            return []
        except Exception as exc:
            log.exception("batch crashed the embedder")
            for item, _ in chunked:
                self._fail(task, item, "internal_error", f"embedding failed: {type(exc).__name__}")
            return []

    def _hand_over(
        self, task: IngestTask, prepared: list[tuple[_Claimed, PreparedDocument]], generation: int
    ) -> int:
        """Release the documents to the store writer (WRITING) and send their points.

        The write carries the collection generation whose model embedded them: a write
        that arrives after a re-index switched generations is embedded again.
        """
        job = self._state.load_job(task.job_id)
        docs: list[WrittenDocument] = []
        for item, prep in prepared:
            if job is None or job.cancelled:
                self._to(task, item.record.id, item.version, DocStatus.CANCELLED, mine=self.owner)
                continue
            moved = self._state.transition(
                task.tenant,
                task.collection,
                item.record.id,
                DocStatus.WRITING,
                version=item.version,
                from_=[DocStatus.EMBEDDING],
                owner=Owner.mine(self.owner),
                title=prep.title,
                pages=prep.pages,
                page_images=prep.page_images,
            )
            if moved.applied:
                docs.append(
                    WrittenDocument(
                        id=item.record.id,
                        version=item.version,
                        content_hash=item.record.content_hash,
                        points=prep.points,
                        reuse=prep.reused,
                    )
                )
        if docs:
            self._queue.send_write(
                ReplaceWrite(
                    tenant=task.tenant,
                    collection=task.collection,
                    job_id=task.job_id,
                    docs=docs,
                    generation=generation,
                    incarnation=task.incarnation,
                )
            )
        return len(docs)

    # ------------------------------------------------------------ guarded transitions

    def _hold(self, task: IngestTask, item: _Claimed, to: DocStatus, src: DocStatus) -> bool:
        return self._state.transition(
            task.tenant,
            task.collection,
            item.record.id,
            to,
            version=item.version,
            from_=[src],
            owner=Owner.hold(self.owner),
        ).applied

    def _release(self, task: IngestTask, item: _Claimed) -> None:
        self._state.transition(
            task.tenant,
            task.collection,
            item.record.id,
            DocStatus.QUEUED,
            version=item.version,
            owner=Owner.mine(self.owner),
        )

    def _fail(self, task: IngestTask, item: _Claimed, reason: str, message: str) -> None:
        log.info("document failed", extra={"document_id": item.record.id, "reason": reason})
        self._state.transition(
            task.tenant,
            task.collection,
            item.record.id,
            DocStatus.FAILED,
            version=item.version,
            owner=Owner.mine(self.owner),
            error=(reason, message),
        )

    def _to(
        self,
        task: IngestTask,
        doc_id: str,
        version: int,
        to: DocStatus,
        src: DocStatus | None = None,
        *,
        mine: str | None = None,
    ) -> bool:
        return self._state.transition(
            task.tenant,
            task.collection,
            doc_id,
            to,
            version=version,
            from_=[src] if src else None,
            owner=Owner.mine(mine) if mine else KEEP,
        ).applied
