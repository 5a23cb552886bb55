"""Take a collection's bundle while uploads, deletes and re-indexes go on.

Each document is read under its store-write lock (the one every replace and delete of it
takes, ``indexing.writes``): its record and its points are then one version, never half
of a write. Only a document's live version goes in: an indexed one, or the indexed
version an upload still in flight has not replaced yet (the record's ``prev``). A
deleted, failed or never-indexed document is left out. A re-index that switches the
collection to another generation while the snapshot runs fails it (take it again).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from core.errors import Conflict
from core.types import ChunkPoint
from indexing.bundle import FORMAT, FORMAT_VERSION, BundleManifest, BundleModels, BundleWriter
from indexing.feedback import FeedbackStore
from indexing.records import CollectionRecord, DocStatus, DocumentRecord
from indexing.state_store import DocRef, StateStore, state_key
from ingest.blob_store import BlobStore
from ingest.page_store import read_manifest
from retriever.layout import payload_to_stored
from retriever.multivector import unpack
from retriever.store import ChunkStore

__all__ = ["SnapshotResult", "sieve_version", "take_snapshot"]

log = logging.getLogger("sieve.indexing")

# A writer holds a document's lock for one batch write (well under a second): wait for it
# this long, in steps, before the document counts as skipped.
_LOCK_WAIT_S = 30.0
_LOCK_STEP_S = 0.05
# Longer than reading one document's points; a snapshot that dies frees it after this.
_LOCK_TTL_S = 60.0
_PAGE = 500


@dataclass(frozen=True)
class SnapshotResult:
    """What a snapshot wrote."""

    path: Path
    bytes: int
    documents: int
    chunks: int
    blobs: int
    skipped: int


def sieve_version() -> str:
    """The installed Sieve's version (``unknown`` from a source tree without metadata)."""
    try:
        return metadata.version("sieve-rag")
    except metadata.PackageNotFoundError:
        return "unknown"


def _live_record(
    state: StateStore, rec: CollectionRecord, doc: DocumentRecord
) -> DocumentRecord | None:
    """The document's version queries are served from, or None when it has none."""
    if doc.status is DocStatus.INDEXED:
        return doc
    if doc.status is DocStatus.DELETED or not doc.indexed_hash:
        return None
    raw = state.raw().hget(state_key("doc", rec.tenant, rec.name, doc.id), "prev")
    if raw is None:
        return None
    prev = {k: json.loads(v) for k, v in json.loads(raw).items()}
    return DocumentRecord.model_validate(prev)


def _points_of(live: DocumentRecord, points: list[ChunkPoint]) -> list[ChunkPoint] | None:
    """The live version's points; None when the store does not hold exactly them.

    Under the document's write lock no write of it is half done, unless its writer died
    mid-write: then the chunks ``0..chunk_count-1`` are missing or of two versions (their
    payloads carry the parsed text's hash, one per version), and it is tried again.
    """
    mine = [p for p in points if p.payload.chunk_no < live.chunk_count]
    if [p.payload.chunk_no for p in mine] != list(range(live.chunk_count)):
        return None
    if len({p.payload.content_hash for p in mine}) > 1:
        return None
    return mine


def _exported(point: ChunkPoint) -> dict[str, Any]:
    return {
        "id": point.id,
        "payload": payload_to_stored(point.payload),
        "dense": point.dense,
        "sparse": None if point.sparse is None else (point.sparse.indices, point.sparse.values),
        "late": None if point.late is None else unpack(point.late),
    }


class _Snapshot:
    def __init__(
        self,
        *,
        state: StateStore,
        store: ChunkStore,
        blobs: BlobStore,
        rec: CollectionRecord,
        writer: BundleWriter,
        sleep: Callable[[float], None],
    ) -> None:
        self.state, self.store, self.blobs, self.rec = state, store, blobs, rec
        self.writer, self.sleep = writer, sleep
        self.skipped = 0
        self.token = f"snapshot:{uuid.uuid4().hex}"

    def run(self) -> None:
        # By upload order (seq), not by position: a delete meanwhile shifts positions, and
        # an offset would then skip a document. A document deleted and uploaded again
        # takes a new seq and comes round again: it goes in once.
        cursor, seen = float("-inf"), set[str]()
        while True:
            page = self.state.documents_after(self.rec.tenant, self.rec.name, cursor, _PAGE)
            if not page:
                return
            cursor = page[-1][1]
            for doc_id, _ in page:
                if doc_id in seen:
                    continue
                outcome = self._one(doc_id)
                if outcome is None:
                    self.skipped += 1
                elif outcome:
                    seen.add(doc_id)

    def _one(self, doc_id: str) -> bool | None:
        """Export one document under its lock: True exported, False nothing to export
        (deleted, not indexed), None it could not be read whole in time."""
        ref = DocRef(self.rec.tenant, self.rec.name, doc_id)
        deadline = time.monotonic() + _LOCK_WAIT_S
        while True:
            if self.state.lock(ref, self.token, _LOCK_TTL_S):
                try:
                    outcome = self._locked(doc_id)
                finally:
                    self.state.unlock(ref, self.token)
                if outcome is not None:
                    return outcome
            if time.monotonic() > deadline:
                log.warning("snapshot skipped a document", extra={"document_id": doc_id})
                return None
            self.sleep(_LOCK_STEP_S)

    def _locked(self, doc_id: str) -> bool | None:
        """True exported, False nothing to export; None: try again."""
        doc = self.state.find_document(self.rec.tenant, self.rec.name, doc_id)
        live = None if doc is None else _live_record(self.state, self.rec, doc)
        if live is None:
            return False
        points = _points_of(live, self.store.document_points(self.rec.store_name, doc_id))
        if points is None:
            return None  # a write that died half-way: its redelivery repairs it
        record = live.model_dump(mode="json")
        record.update(status=DocStatus.INDEXED.value, owner="", crashes=0)
        self.writer.add_document(record, [_exported(p) for p in points])
        self._blobs(live, points)
        return True

    def _blobs(self, live: DocumentRecord, points: list[ChunkPoint]) -> None:
        keys = {p.payload.image.blob_id for p in points if p.payload.image is not None}
        if live.page_images:
            self.writer.add_blob(live.page_images, self.blobs.get(live.page_images))
            keys |= {
                page.key for page in read_manifest(self.blobs, live.page_images).pages.values()
            }
        for key in sorted(keys - self.writer.blobs):
            self.writer.add_blob(key, self.blobs.get(key))


def take_snapshot(
    target: Path,
    *,
    tenant: str,
    name: str,
    state: StateStore,
    store: ChunkStore,
    blobs: BlobStore,
    feedback: FeedbackStore | None,
    extras: dict[str, bytes] | None = None,
    scratch: Path,
    sleep: Callable[[float], None] = time.sleep,
) -> SnapshotResult:
    """Write the collection's bundle to ``target`` (atomically: all of it or nothing).

    Raises:
        NotFound: no such collection.
        Conflict: ``snapshot_interrupted``: a re-index switched the collection meanwhile.
    """
    rec = state.get_collection(tenant, name)
    writer = BundleWriter(scratch, dense_dimension=rec.dimension, late_dimension=rec.late_dimension)
    try:
        job = _Snapshot(state=state, store=store, blobs=blobs, rec=rec, writer=writer, sleep=sleep)
        job.run()
        after = state.get_collection(tenant, name)
        if after.store_name != rec.store_name or after.incarnation != rec.incarnation:
            raise Conflict(
                f"collection {name!r} was re-indexed or replaced during the snapshot; "
                "take it again",
                code="snapshot_interrupted",
            )
        judgments = feedback.list(tenant, name) if feedback is not None else []
        if judgments:
            lines = "".join(j.model_dump_json() + "\n" for j in judgments)
            writer.add_extra("feedback.jsonl", lines.encode())
        for extra, data in (extras or {}).items():
            writer.add_extra(extra, data)
        raw = state.raw()
        bm25 = raw.hgetall(state_key("bm25len", tenant, name))
        manifest = BundleManifest(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            sieve_version=sieve_version(),
            collection=name,
            models=BundleModels(
                dense_model=rec.embedding_model,
                dense_dimension=rec.dimension,
                sparse="bm25" if rec.hybrid else None,
                late_model=rec.late_model,
                late_dimension=rec.late_dimension,
            ),
            counts={
                "documents": writer.documents,
                "chunks": writer.chunks,
                "blobs": len(writer.blobs),
                "feedback": len(judgments),
                "skipped": job.skipped,
            },
        )
        collection = {"record": rec.model_dump(mode="json"), "bm25len": bm25}
        size = writer.write(target, collection, manifest)
        return SnapshotResult(
            target, size, writer.documents, writer.chunks, len(writer.blobs), job.skipped
        )
    finally:
        writer.close()
