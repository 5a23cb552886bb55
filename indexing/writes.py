"""The store-write protocol: points land only for the version they were computed for.

Run by the store's owner (the API process in embedded mode, any worker in compose mode,
where writes run in parallel and retries reorder them). Each document's writes take a
short Redis lock, so a replace and a delete of the same document never interleave; under
the lock the writer claims the document's current version, writes, and marks it indexed
with a guarded transition. A delete, once its tombstone exists, always wins:

- a replace for an older version finds the version moved on and writes nothing;
- a replace that wrote just before the tombstone is undone by the delete that follows it
  under the same lock (the delete removes every point of the document);
- a delete that finds a newer version already indexed leaves it alone (its points are
  the new version's).

A re-index (``indexing.reindex``) of the collection sees every write: each one passes a
gate (refused, and sent again a moment later, while the re-index pauses the collection's
writes for its switch), records the documents it changed before it marks them indexed,
and writes to the store the record names when it is inside the gate. A replace embedded
for an older generation (another model) writes nothing: its documents are embedded again.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from core.errors import SieveError
from core.types import ChunkFilter, ChunkPoint, FieldEquals, Range
from indexing.heartbeat import Heartbeat
from indexing.messages import DeleteWrite, DocVersion, IngestTask, ReplaceWrite, WrittenDocument
from indexing.queue import TaskQueue
from indexing.records import CollectionRecord, DocStatus
from indexing.reindex_state import ReindexState
from indexing.reuse import ChunkManifest, ChunkManifests, fill_reused, reused_ids, vector_identity
from indexing.state_store import KEEP, DocRef, Owner, StateStore
from retriever.store import ChunkStore
from tracing import span

__all__ = ["StoreWriter"]

log = logging.getLogger("sieve.indexing")

# Longer than any one write of a batch (Edge upserts ~10k points/s): a writer that dies
# holding a lock delays that document's next write by at most this.
_LOCK_TTL_S = 60.0
# A document whose lock is held is written again this much later.
_RETRY_LOCKED_S = 1.0
# A write refused while a re-index switches generations (a pause of well under a second
# for a catch-up of a few documents) is sent again this much later.
_RETRY_PAUSED_S = 0.5


class StoreWriter:
    """Applies ``ReplaceWrite`` / ``DeleteWrite`` messages to the store, as owner ``owner``."""

    def __init__(
        self,
        state: StateStore,
        store: ChunkStore,
        queue: TaskQueue,
        *,
        heartbeat: Heartbeat,
        reuse_vectors: bool = True,
    ) -> None:
        self._state = state
        self._store = store
        self._queue = queue
        self._heartbeat = heartbeat
        self._rx = ReindexState(state.raw())
        self._manifests = ChunkManifests(state.raw())
        # Keep the chunk manifests incremental re-ingest plans with (``indexing.reuse``).
        self._keep_manifests = reuse_vectors
        self.owner = ""

    def apply(self, write: ReplaceWrite | DeleteWrite, *, last_attempt: bool = False) -> str:
        """Apply one write under a lease of its own; returns what happened.

        Raises:
            UpstreamUnavailable: the store or Redis failed; the caller retries the write.
        """
        with self._heartbeat.lease() as owner:
            self.owner = owner
            token = f"{owner}|{uuid.uuid4().hex}"
            if not self._rx.enter(write.tenant, write.collection, token):
                self._queue.send_write(write, countdown_s=_RETRY_PAUSED_S)
                return "paused"
            try:
                if isinstance(write, DeleteWrite):
                    return self._delete(write)
                return self._replace(write, last_attempt=last_attempt)
            finally:
                self._rx.leave(write.tenant, write.collection, token)

    def _replace(self, write: ReplaceWrite, *, last_attempt: bool) -> str:
        collection = self._state.find_collection(write.tenant, write.collection)
        if collection is None or collection.incarnation != write.incarnation:
            return "skipped"
        if write.generation != collection.generation:
            return self._embed_again(write)
        job = self._state.load_job(write.job_id)
        token = f"{self.owner}:{uuid.uuid4().hex}"
        locked: list[WrittenDocument] = []
        deferred: list[WrittenDocument] = []
        for doc in write.docs:
            ref = DocRef(write.tenant, write.collection, doc.id)
            (locked if self._state.lock(ref, token, _LOCK_TTL_S) else deferred).append(doc)
        try:
            cancelled = job is None or job.cancelled
            live = [doc for doc in locked if self._claim(write, doc, cancelled=cancelled)]
            try:
                live = self._take_reused(write, collection, live)
                self._write_points(collection.store_name, live)
                self._keep_manifest(write, collection, live)
            except Exception as exc:
                # Release the claims (a retry may run anywhere), or fail on the last attempt.
                code, message = (
                    (exc.code, exc.message)
                    if isinstance(exc, SieveError)
                    else ("internal_error", type(exc).__name__)
                )
                for doc in live:
                    if last_attempt:
                        self._mark(
                            write,
                            doc,
                            DocStatus.FAILED,
                            Owner.mine(self.owner),
                            error=(code, f"the chunk store failed: {message}"),
                        )
                    else:
                        self._mark(write, doc, DocStatus.WRITING, Owner.mine(self.owner))
                raise
            # Before they count as indexed: a re-index must see every change it may miss.
            self._rx.touch(write.tenant, write.collection, [doc.id for doc in live])
            indexed = [
                doc
                for doc in live
                if self._mark(
                    write,
                    doc,
                    DocStatus.INDEXED,
                    Owner.mine(self.owner),
                    chunk_count=len(doc.points),
                    chunks_reused=len(doc.reuse),
                    indexed_hash=doc.content_hash,
                    error_reason=None,
                    error_message=None,
                )
            ]
            if indexed:
                reused = sum(len(doc.reuse) for doc in indexed)
                self._manifests.count(
                    embedded=sum(len(doc.points) for doc in indexed) - reused, reused=reused
                )
        finally:
            for doc in locked:
                self._state.unlock(DocRef(write.tenant, write.collection, doc.id), token)
        if deferred:
            self._queue.send_write(write.model_copy(update={"docs": deferred}), countdown_s=1)
        return "indexed" if locked else "deferred"

    def _take_reused(
        self, write: ReplaceWrite, collection: CollectionRecord, docs: list[WrittenDocument]
    ) -> list[WrittenDocument]:
        """The claimed documents with their reused chunks' vectors read from the store.

        A document whose old points no longer hold exactly its reused chunks (a manifest
        out of step with the store) is queued again, its manifest dropped, to be embedded
        in full; it is left out of this write.
        """
        wanted = [pid for doc in docs for pid in reused_ids(doc, collection.point_ns)]
        if not wanted:
            return docs
        with span("store.reuse", collection=collection.store_name, points=len(wanted)):
            old = {p.id: p for p in self._store.get(collection.store_name, wanted)}
        ready: list[WrittenDocument] = []
        redo: list[WrittenDocument] = []
        for doc in docs:
            filled = fill_reused(doc, old, namespace=collection.point_ns, collection=collection)
            if filled is None:
                redo.append(doc)
            else:
                ready.append(filled)
        if redo:
            self._embed_in_full(write, redo)
        return ready

    def _embed_in_full(self, write: ReplaceWrite, docs: list[WrittenDocument]) -> None:
        """Back to ``queued`` (same version, claim released) without a manifest to plan by."""
        self._manifests.drop(write.tenant, write.collection, [doc.id for doc in docs])
        self._requeue(
            write, [d.id for d in docs], [d.version for d in docs], Owner.mine(self.owner)
        )
        log.info("reused vectors out of step: embedding again", extra={"documents": len(docs)})

    def _requeue(
        self, write: ReplaceWrite, ids: list[str], versions: list[int], owner: Owner
    ) -> None:
        """Each document back to ``queued`` at its version (a guarded transition, so a newer
        change still wins), and its ingest sent again."""
        for doc_id, version in zip(ids, versions, strict=True):
            back = self._state.transition(
                write.tenant,
                write.collection,
                doc_id,
                DocStatus.QUEUED,
                version=version,
                from_=[DocStatus.WRITING],
                owner=owner,
            )
            if back.applied:
                self._queue.send_ingest(
                    IngestTask(
                        tenant=write.tenant,
                        collection=write.collection,
                        job_id=write.job_id,
                        docs=[DocVersion(id=doc_id, version=version)],
                        incarnation=write.incarnation,
                    )
                )

    def _keep_manifest(
        self, write: ReplaceWrite, collection: CollectionRecord, docs: list[WrittenDocument]
    ) -> None:
        """Record the texts of what was just written (the next re-upload plans reuse by it)."""
        if not self._keep_manifests or not docs:
            return
        identity = vector_identity(collection)
        self._manifests.save(
            write.tenant,
            write.collection,
            {
                doc.id: ChunkManifest.of(identity, [p.payload.text for p in doc.points])
                for doc in docs
            },
        )

    def _embed_again(self, write: ReplaceWrite) -> str:
        """Points of an older generation's model: queue their documents for ingest again.

        Each goes back to ``queued`` at the same version (a guarded transition, so a newer
        change still wins); the recovery pass resends one whose message a crash lost.
        """
        self._requeue(
            write, [d.id for d in write.docs], [d.version for d in write.docs], Owner.claim("")
        )
        log.info(
            "write of an older generation embedded again", extra={"documents": len(write.docs)}
        )
        return "regenerated"

    def _claim(self, write: ReplaceWrite, doc: WrittenDocument, *, cancelled: bool) -> bool:
        """Claim a locked document's version for writing (a cancelled job's is cancelled)."""
        if cancelled:
            self._mark(write, doc, DocStatus.CANCELLED, KEEP)
            return False
        return self._mark(write, doc, DocStatus.WRITING, Owner.claim(self.owner))

    def _write_points(self, store_name: str, docs: list[WrittenDocument]) -> None:
        if not docs:
            return
        # New chunks first, then the stale tail of an older, longer version: a reader never
        # sees a document vanish, and a crash in between is repaired by the next write.
        points = [p for doc in docs for p in doc.points]
        with span("store.write", collection=store_name, documents=len(docs), points=len(points)):
            self._write_and_trim(store_name, docs, points)

    def _write_and_trim(
        self, store_name: str, docs: list[WrittenDocument], points: list[ChunkPoint]
    ) -> None:
        self._store.upsert(store_name, points)
        for doc in docs:
            stale = ChunkFilter(
                must=[
                    FieldEquals(key="document_id", value=doc.id),
                    Range(key="chunk_no", gte=len(doc.points)),
                ]
            )
            if self._store.count(store_name, stale):
                self._store.delete_by_filter(store_name, stale)

    def _mark(
        self,
        write: ReplaceWrite,
        doc: WrittenDocument,
        to: DocStatus,
        owner: Owner,
        *,
        error: tuple[str, str] | None = None,
        **fields: Any,
    ) -> bool:
        return self._state.transition(
            write.tenant,
            write.collection,
            doc.id,
            to,
            version=doc.version,
            from_=[DocStatus.WRITING],
            owner=owner,
            error=error,
            **fields,
        ).applied

    def _delete(self, write: DeleteWrite) -> str:
        collection = self._state.find_collection(write.tenant, write.collection)
        if collection is None or collection.incarnation != write.incarnation:
            return "skipped"
        ref = DocRef(write.tenant, write.collection, write.doc.id)
        token = f"{self.owner}:{uuid.uuid4().hex}"
        if not self._state.lock(ref, token, _LOCK_TTL_S):
            self._queue.send_write(write, countdown_s=_RETRY_LOCKED_S)
            return "deferred"
        try:
            current = self._state.find_document(write.tenant, write.collection, write.doc.id)
            newer_indexed = (
                current is not None
                and current.version > write.doc.version
                and current.status is DocStatus.INDEXED
            )
            if newer_indexed:
                return "skipped"
            with span("store.delete", collection=collection.store_name, document_id=write.doc.id):
                self._store.delete_document(collection.store_name, write.doc.id)
            self._manifests.drop(write.tenant, write.collection, [write.doc.id])
            self._rx.touch(write.tenant, write.collection, [write.doc.id])
            self._state.forget(write.tenant, write.collection, write.doc.id, write.doc.version)
            return "deleted"
        finally:
            self._state.unlock(ref, token)
