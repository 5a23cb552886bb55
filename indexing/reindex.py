"""Re-indexing a collection without re-uploading: new vectors from the stored chunk texts.

A re-index is a job. It builds a new store collection (a *generation*) beside the one that
serves, from the points of the serving one — same ids, same payloads, the BM25 vectors
copied, the dense (and token) vectors embedded again through the hub where their model
changed and copied where it did not, so adding or removing late interaction embeds only
the token vectors, or nothing — then switches the collection's record to it in one atomic
step, and drops the old one. Queries keep answering from the old generation until the switch.

Why nothing accepted is lost, duplicated or resurrected:

- Every store write of the collection passes a gate and records the documents it changed
  (``ReindexState.touch``) before it marks them indexed (``indexing.writes``). The job
  syncs documents in upload order, then, repeatedly, the ones written since; a document
  written while it was read is simply synced again.
- For the switch the job pauses the collection's writes (the gate refuses them; they are
  sent again a moment later), waits for the writes already inside the gate (a dead
  writer's token is ignored), syncs what they changed, and switches the record's store
  pointer and model fields with the end of the pause in one MULTI.
- A write embedded for the old generation that arrives after the switch writes nothing
  and its documents are embedded again (``ReplaceWrite.generation``).
- The job runs under a lease (``Heartbeat``) in the process that owns the store (the API
  in embedded mode); when its process dies, the lifecycle loop of the next one claims it
  and resumes from its cursor (the new generation's points are durable). Before the
  switch the record still points at the old generation; after it, only the old store
  collection is left to drop. A job whose owner died ``max_crashes`` times fails.
- Cancelling takes the job off the record first, then drops the new generation; deleting
  the collection ends the job and drops both.

On the Qdrant server the store names are physical collections too; the record's pointer
is the one switch in both modes (an alias would be a second switch to keep in step).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from core.errors import Conflict, InvalidInput, NotFound, SieveError, UpstreamUnavailable
from core.types import ChunkPoint, MultiVector, StoreCollectionSpec
from indexing.changes import cancel_job
from indexing.heartbeat import Heartbeat
from indexing.records import (
    REINDEX_KIND,
    CollectionRecord,
    JobRecord,
    JobView,
    ReindexTarget,
    generation_store_name,
)
from indexing.reindex_state import ReindexState
from indexing.state_store import StateStore
from ingest.embeddings_client import EmbeddingsClient
from ingest.pipeline import embed_texts
from retriever.store import ChunkStore

__all__ = ["ModelChange", "Reindexer"]

log = logging.getLogger("sieve.reindex")


@dataclass(frozen=True)
class ModelChange:
    """The model fields a re-index pins (dimensions already probed from the hub)."""

    embedding_model: str
    dimension: int
    late_model: str | None
    late_dimension: int | None


class _Ended(Exception):
    """The job cannot go on here: cancelled, collection gone, or this process stops."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass(frozen=True)
class _Source:
    """The serving generation, and which of its vectors the new one keeps as they are: the
    dense ones when the embedding model stays, the token ones when the late model stays
    (adding or removing late interaction embeds nothing the collection already has)."""

    store: str
    keep_dense: bool
    keep_late: bool

    @classmethod
    def of(cls, rec: CollectionRecord, target: ReindexTarget) -> _Source:
        same_dense = (rec.embedding_model, rec.dimension) == (
            target.embedding_model,
            target.dimension,
        )
        same_late = (rec.late_model, rec.late_dimension) == (
            target.late_model,
            target.late_dimension,
        )
        return cls(
            store=rec.store_name,
            keep_dense=same_dense,
            keep_late=target.late_model is not None and same_late,
        )


class Reindexer:
    """Starts, runs, resumes and cancels re-index jobs in the store-owning process."""

    def __init__(
        self,
        state: StateStore,
        store: ChunkStore,
        embeddings: EmbeddingsClient,
        *,
        heartbeat: Heartbeat,
        batch_docs: int = 32,
        max_crashes: int = 3,
        drop_grace_s: float = 2.0,
        hub_retries: int = 5,
    ) -> None:
        self._state = state
        self._rx = ReindexState(state.raw(), job_retention_s=state.job_retention_s)
        self._store = store
        self._embeddings = embeddings
        self._heartbeat = heartbeat
        self._batch = batch_docs
        self._max_crashes = max_crashes
        self._grace_s = drop_grace_s
        self._hub_retries = hub_retries
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ requests

    def start(self, tenant: str, name: str, change: ModelChange) -> JobView:
        """Begin re-indexing ``name`` with ``change``; runs in a thread of this process.

        Raises:
            NotFound: no such collection.
            InvalidInput: nothing would change, or the new store name is too long.
            Conflict: a re-index of it is already under way (``reindex_in_progress``).
        """
        rec = self._state.get_collection(tenant, name)
        if rec.reindex is not None:
            raise Conflict(
                f"collection {name!r} is being re-indexed (job {rec.reindex.job_id})",
                code="reindex_in_progress",
            )
        current = ModelChange(
            rec.embedding_model, rec.dimension, rec.late_model, rec.late_dimension
        )
        if change == current:
            raise InvalidInput(
                "the re-index changes nothing: give another embedding_model or late_interaction",
                code="no_change",
            )
        generation = self._rx.new_generation()
        store = generation_store_name(rec.point_ns, generation)
        try:
            StoreCollectionSpec(
                name=store,
                dense_size=change.dimension,
                sparse=True,
                late_size=change.late_dimension,
            )
        except ValidationError as exc:
            raise InvalidInput(
                f"collection {name!r} cannot be re-indexed: store name or dimension out of range",
                code="invalid_collection",
            ) from exc
        job = JobRecord(
            id=self._state.new_job_id(), tenant=tenant, collection=name, kind=REINDEX_KIND
        )
        target = ReindexTarget(
            job_id=job.id,
            generation=generation,
            store=store,
            embedding_model=change.embedding_model,
            dimension=change.dimension,
            late_model=change.late_model,
            late_dimension=change.late_dimension,
        )
        self._rx.begin(job, target, total=self._state.document_total(tenant, name))
        log.info("re-index accepted", extra={"job_id": job.id, "store": store})
        self.kick(job.id)
        return self._rx.view(job)

    def job_view(self, tenant: str, job_id: str) -> JobView:
        """Any job's view; a re-index shows its documents done of total."""
        view = self._state.get_job(tenant, job_id)
        return self._rx.view(view.job) if view.job.kind == REINDEX_KIND else view

    def cancel(self, tenant: str, job_id: str) -> JobView:
        """Cancel a job; a re-index stops at its next step (a finished one stays finished)."""
        view = self._state.get_job(tenant, job_id)
        if view.job.kind != REINDEX_KIND:
            return cancel_job(self._state, tenant=tenant, job_id=job_id)
        self._state.mark_cancelled(view.job)
        self.kick(job_id)  # a job whose owner is gone is cleaned up here and now
        return self._rx.view(self._state.get_job(tenant, job_id).job)

    def collection_deleted(self, rec: CollectionRecord) -> None:
        """After the collection's records are gone: end its re-index, drop its generation."""
        if rec.reindex is None:
            return
        self._drop(rec.reindex.store)
        self._rx.finish(
            rec.reindex.job_id, "failed", "collection_deleted", "the collection was deleted"
        )

    def reindex_of(self, rec: CollectionRecord) -> dict[str, str] | None:
        """``{job_id, state}`` of the collection's re-index under way, for its view."""
        if rec.reindex is None:
            return None
        progress = self._rx.progress(rec.reindex.job_id)
        return {"job_id": rec.reindex.job_id, "state": progress.get("state", "queued")}

    # ------------------------------------------------------------ threads

    def kick(self, job_id: str) -> None:
        """Run the job in a thread of this process unless one already does."""
        with self._lock:
            running = self._threads.get(job_id)
            if self._stop.is_set() or (running is not None and running.is_alive()):
                return
            thread = threading.Thread(
                target=self._guarded_run, args=(job_id,), name=f"reindex-{job_id[:8]}", daemon=True
            )
            self._threads[job_id] = thread
            thread.start()

    def resume_pass(self) -> int:
        """Resume every unfinished job (the lifecycle loop calls this); a job held by a
        live owner elsewhere is left to it. Returns how many were kicked."""
        jobs = self._rx.active()
        for job_id in jobs:
            self.kick(job_id)
        return len(jobs)

    def stop(self) -> None:
        """Stop every job at its next step; each is released for the next process."""
        self._stop.set()
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout=30)

    async def close(self) -> None:
        """``stop``, then stop the heartbeat (for an async shutdown)."""
        await asyncio.to_thread(self.stop)
        await asyncio.to_thread(self._heartbeat.stop)

    def _guarded_run(self, job_id: str) -> None:
        try:
            self.run(job_id)
        except Exception:
            # Left to the next pass: its lease ends with this thread, so it is resumed.
            log.exception("re-index step failed", extra={"job_id": job_id})

    # ------------------------------------------------------------ the job

    def run(self, job_id: str) -> str:
        """Run (or resume) one job to its end, as a fresh lease; returns how it ended."""
        with self._heartbeat.lease() as owner:
            crashes = self._rx.claim(job_id, owner)
            if crashes < 0:
                return "held" if crashes == -2 else "ended"
            try:
                return self._run(job_id, crashes)
            except UpstreamUnavailable:
                # The hub or Redis is away: not a crash; the next pass resumes it.
                self._rx.release(job_id, owner)
                raise
            except _Ended as ended:
                if ended.why == "stopping":
                    self._rx.release(job_id, owner)
                    return "stopped"
                return self._run(job_id, 0)  # cancelled or deleted meanwhile: clean up

    def _run(self, job_id: str, crashes: int) -> str:
        p = self._rx.progress(job_id)
        job = self._state.load_job(job_id)
        tenant, name = p["tenant"], p["collection"]
        state = p.get("state", "")
        if state == "switched":
            return self._retire(job_id, tenant, name, p["source"])
        if state in ("cancelling", "failing"):
            return self._clean_up(job_id, p["target"], state)
        rec = self._state.find_collection(tenant, name)
        if job is None or rec is None or rec.reindex is None or rec.reindex.job_id != job_id:
            self._drop(p["target"])
            self._rx.finish(job_id, "failed", "collection_deleted", "the collection was deleted")
            return "failed"
        if job.cancelled:
            return self._abort(job, "cancelling", "cancelled", "the job was cancelled")
        if crashes >= self._max_crashes:
            return self._abort(
                job,
                "failing",
                "reindex_crashed",
                f"its process died {crashes} times while re-indexing",
            )
        return self._attempt(job, rec, rec.reindex)

    def _attempt(self, job: JobRecord, rec: CollectionRecord, target: ReindexTarget) -> str:
        """Build and switch; a refusal of the hub or the store fails the job with its reason."""
        try:
            return self._build_and_switch(job, rec, target)
        except _Ended:
            raise
        except SieveError as exc:
            if isinstance(exc, NotFound):
                self._check(job)  # a store collection gone: the collection was deleted?
            if isinstance(exc, UpstreamUnavailable):
                raise  # a crash, as far as the job is concerned: resumed by the next pass
            return self._abort(job, "failing", exc.code, exc.message)

    def _build_and_switch(
        self, job: JobRecord, rec: CollectionRecord, target: ReindexTarget
    ) -> str:
        tenant, name = job.tenant, job.collection
        self._ensure_target(job, target)
        source = _Source.of(rec, target)
        if not self._rx.paused(tenant, name):
            self._build(job, source, target)
            for _ in range(10):
                if len(self._rx.dirty(tenant, name)) <= self._batch:
                    break
                self._sync_dirty(job, source, target)
            if not self._rx.pause(job):
                self._check(job)
                raise _Ended("gone")
        while self._rx.live_writers(tenant, name):
            self._check(job)
            self._stop.wait(0.05)
        while self._sync_dirty(job, source, target):
            pass
        if not self._rx.switch(job):
            self._check(job)
            raise _Ended("gone")
        log.info("re-index switched", extra={"job_id": job.id, "store": target.store})
        return self._retire(job.id, tenant, name, source.store)

    def _ensure_target(self, job: JobRecord, target: ReindexTarget) -> None:
        if self._store.collection_exists(target.store):
            return
        with contextlib.suppress(Conflict):
            self._store.create_collection(
                StoreCollectionSpec(
                    name=target.store,
                    dense_size=target.dimension,
                    sparse=True,
                    late_size=target.late_dimension,
                )
            )
        # Deleted while it was created? Then nobody else will drop it.
        self._check(job)

    def _build(self, job: JobRecord, source: _Source, target: ReindexTarget) -> None:
        """Every document in upload order, from the cursor on (resumable)."""
        cursor = float(self._rx.progress(job.id).get("cursor", "-inf"))
        while True:
            self._check(job)
            rows = self._state.documents_after(job.tenant, job.collection, cursor, self._batch)
            if not rows:
                return
            self._sync(job, source, target, [doc_id for doc_id, _ in rows])
            cursor = rows[-1][1]
            total = self._state.document_total(job.tenant, job.collection)
            self._rx.add_done(job.id, len(rows), cursor=cursor, total=total)

    def _sync_dirty(self, job: JobRecord, source: _Source, target: ReindexTarget) -> bool:
        """Sync the documents written since they were synced; False when there were none."""
        dirty = self._rx.dirty(job.tenant, job.collection)
        if not dirty:
            return False
        ids = sorted(dirty)
        for start in range(0, len(ids), self._batch):
            self._check(job)
            part = ids[start : start + self._batch]
            self._sync(job, source, target, part)
            self._rx.settle(job.tenant, job.collection, {i: dirty[i] for i in part})
        return True

    def _sync(
        self, job: JobRecord, source: _Source, target: ReindexTarget, doc_ids: Sequence[str]
    ) -> None:
        """Make these documents' points in the new generation what they are in the old."""
        old: list[ChunkPoint] = []
        for doc_id in doc_ids:
            chunks = self._store.list_document_chunks(source.store, doc_id)
            if chunks:
                old += self._store.get(source.store, [c.id for c in chunks])
        dense, late = self._vectors(job, source, target, old)
        for doc_id in doc_ids:
            self._store.delete_document(target.store, doc_id)
        if old:
            self._store.upsert(
                target.store,
                [
                    ChunkPoint(id=p.id, dense=d, sparse=p.sparse, payload=p.payload, late=lv)
                    for p, d, lv in zip(old, dense, late, strict=True)
                ],
            )

    def _vectors(
        self, job: JobRecord, source: _Source, target: ReindexTarget, old: list[ChunkPoint]
    ) -> tuple[list[list[float]], list[MultiVector | None]]:
        """The new generation's vectors: kept where the model did not change, else embedded."""
        if not old:
            return [], []
        dense = [p.dense for p in old] if source.keep_dense and all(p.dense for p in old) else None
        late: list[MultiVector | None] | None = [None] * len(old)
        if target.late_model is not None:
            keep = source.keep_late and all(p.late is not None for p in old)
            late = [p.late for p in old] if keep else None
        if dense is not None and late is not None:
            return dense, late
        new_dense, new_late = self._embed(
            job,
            [p.payload.text for p in old],
            target,
            with_dense=dense is None,
            with_late=late is None,
        )
        return (new_dense if dense is None else dense), (new_late if late is None else late)

    def _embed(
        self,
        job: JobRecord,
        texts: list[str],
        target: ReindexTarget,
        *,
        with_dense: bool,
        with_late: bool,
    ) -> tuple[list[list[float]], list[MultiVector | None]]:
        for attempt in range(self._hub_retries + 1):
            try:
                return embed_texts(
                    self._embeddings,
                    texts,
                    token_counts=None,
                    embedding_model=target.embedding_model,
                    dimension=target.dimension,
                    late_model=target.late_model if with_late else None,
                    late_dimension=target.late_dimension,
                    with_dense=with_dense,
                )
            except UpstreamUnavailable:
                if attempt == self._hub_retries:
                    raise
                self._check(job)
                self._stop.wait(min(30.0, 2.0**attempt))
        raise AssertionError("unreachable")

    def _check(self, job: JobRecord) -> None:
        """Raise ``_Ended`` when the job must stop here."""
        if self._stop.is_set():
            raise _Ended("stopping")
        current = self._state.load_job(job.id)
        rec = self._state.find_collection(job.tenant, job.collection)
        if rec is None or rec.reindex is None or rec.reindex.job_id != job.id:
            raise _Ended("gone")
        if current is None or current.cancelled:
            raise _Ended("cancelled")

    # ------------------------------------------------------------ endings

    def _retire(self, job_id: str, tenant: str, name: str, source: str) -> str:
        """After the switch: drop the old generation once in-flight queries left it."""
        self._stop.wait(self._grace_s)
        rec = self._state.find_collection(tenant, name)
        # A collection deleted and created again may serve from the same (generation-0) name.
        if rec is None or rec.store_name != source:
            self._drop(source)
        self._rx.finish(job_id, "completed")
        log.info("re-index completed", extra={"job_id": job_id})
        return "completed"

    def _abort(self, job: JobRecord, state: str, reason: str, message: str) -> str:
        log.warning("re-index stopped", extra={"job_id": job.id, "reason": reason})
        self._rx.abort(job, state, reason, message)
        return self._clean_up(job.id, self._rx.progress(job.id)["target"], state)

    def _clean_up(self, job_id: str, target: str, state: str) -> str:
        self._drop(target)
        final = "cancelled" if state == "cancelling" else "failed"
        p = self._rx.progress(job_id)
        self._rx.finish(job_id, final, p.get("reason", ""), p.get("message", ""))
        return final

    def _drop(self, store: str) -> None:
        if self._store.collection_exists(store):
            with contextlib.suppress(NotFound):
                self._store.drop_collection(store)
