"""Collection bundles: snapshot and restore over both store adapters, refusal of bad files,
crash safety of a restore (and removal of one whose process died), the tenant's quotas,
and the point-in-time rule under a concurrent delete.

Real Redis (the lifecycle script), the real runner, store writer and real stores (Edge, and
qdrant-client's local mode for the server adapter); embedding is the deterministic function
of test_lifecycle_properties plus BM25 and token vectors, so every vector kind travels.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import zstandard

from core.errors import Conflict, InvalidInput, NotFound, QuotaExceeded
from core.types import ChunkPoint, HybridQuery, QueryMode, SparseVec, StoreCollectionSpec
from indexing.accept import UploadItem, accept
from indexing.bundle import BundleContents, BundleModels, open_bundle
from indexing.changes import delete_document
from indexing.feedback import FeedbackStore, Judgment
from indexing.query_log import QueryLogConfig
from indexing.records import CollectionRecord, DocStatus
from indexing.restore import RestoreResult, clear_abandoned_restores, restore_bundle
from indexing.snapshot import take_snapshot
from indexing.state_store import StateStore, TenantQuota
from ingest.blob_store import LocalBlobStore
from ingest.pipeline import ChunkedDocument, DocumentPipeline, PreparedDocument
from retriever.multivector import pack
from retriever.store import ChunkStore
from tests.indexing.stores import chunk_store
from tests.indexing.test_lifecycle_properties import LIMITS, _Pipeline, _Queue, _workers

TENANT, COLL = "t", "c"
STORE = "t-c"
DOCS = [f"d{i}" for i in range(8)]
LATE = 3


class _AllKinds(_Pipeline):
    """The fixed dense function, plus a BM25-like sparse vector and token vectors."""

    def embed_many(
        self, items: list[tuple[ChunkedDocument, str]], **kwargs: object
    ) -> list[PreparedDocument]:
        out = super().embed_many(items, **kwargs)  # type: ignore[arg-type]
        for prepared in out:
            prepared.points[:] = [_enrich(p) for p in prepared.points]
        return out


def _enrich(point: ChunkPoint) -> ChunkPoint:
    words = point.payload.text.split()
    indices = sorted({hash(w) % 1000 for w in words})
    rows = [[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]] if point.payload.chunk_no % 2 else [[0.6, 0.8, 0.0]]
    # Distinct dense vectors (the base function ties), so no query order rests on a tie.
    seed = int.from_bytes(hashlib.sha256(point.id.encode()).digest()[:4], "big")
    dense = np.random.default_rng(seed).random(len(point.dense)).tolist()
    return point.model_copy(
        update={
            "dense": dense,
            "sparse": SparseVec(indices=indices, values=[1.0 + i % 3 for i in indices]),
            "late": pack(rows),
        }
    )


def _text(doc: str) -> str:
    return f"{doc} alpha beta. " + " ".join(
        f"{doc}w{i} gamma" for i in range(30 + 40 * int(doc[1:]))
    )


@pytest.fixture
def source(redis_url: str, tmp_path: Path) -> Iterator[tuple[StateStore, ChunkStore, Path]]:
    """A filled Edge collection ``c`` (8 documents, every vector kind) and its workers' root."""
    state = StateStore.from_url(redis_url)
    state.raw().flushdb()
    with chunk_store("edge", tmp_path / "src") as (store, _):
        store.create_collection(
            StoreCollectionSpec(name=STORE, dense_size=4, sparse=True, late_size=LATE)
        )
        state.create_collection(
            CollectionRecord(
                tenant=TENANT,
                name=COLL,
                embedding_model="m",
                dimension=4,
                store=STORE,
                late_model="late-m",
                late_dimension=LATE,
            )
        )
        queue, blobs, _, runner, writer = _workers(state, store, tmp_path)
        runner._pipeline = cast(DocumentPipeline, _AllKinds())
        items = [UploadItem(doc_id=d, source=f"{d}.txt", data=_text(d).encode()) for d in DOCS]
        accept(
            state, blobs, queue, LIMITS, tenant=TENANT, collection=COLL, items=items,
            expires_at=EXPIRES_AT,
        )  # fmt: skip
        _drain(queue, runner, writer)
        yield state, store, tmp_path
    state.close()


def _drain(queue: _Queue, runner: object, writer: object) -> None:
    while queue.ingest or queue.writes:
        while queue.ingest:
            runner.run(queue.ingest.pop(0), last_attempt=False)  # type: ignore[attr-defined]
        while queue.writes:
            writer.apply(queue.writes.pop(0))  # type: ignore[attr-defined]


# A day from when the tests run: kept through the bundle, never reached by them.
EXPIRES_AT = float(int(time.time()) + 86_400)

QUERIES = [
    HybridQuery(dense=[1.0, 1.0, 0.5, 1.0], sparse=SparseVec(indices=[1, 5, 9], values=[1, 1, 1])),
    HybridQuery(
        dense=[0.2, 3.0, 0.5, 0.0],
        sparse=SparseVec(indices=[2, 7], values=[1, 1]),
        late=pack([[1.0, 0.0, 0.0]]),
        limit=10,
    ),
    HybridQuery(dense=[1.0, 0.0, 0.5, 6.0], mode=QueryMode.DENSE, limit=5),
]


def _answers(store: ChunkStore, name: str) -> list[list[tuple[str, float]]]:
    return [[(h.id, h.score) for h in store.query(name, q)] for q in QUERIES]


def _serves(models: BundleModels) -> None:
    if models.dense_model != "m":
        raise InvalidInput(f"model {models.dense_model!r} is not served", code="models_not_served")


def _restorer(
    bundle: BundleContents, state: StateStore, store: ChunkStore, blobs: LocalBlobStore
) -> partial[RestoreResult]:
    """``restore_bundle`` of ``bundle`` for the tenant, models served, no feedback store:
    each test passes the name and what it varies."""
    return partial(
        restore_bundle,
        bundle,
        tenant=TENANT,
        state=state,
        store=store,
        blobs=blobs,
        feedback=None,
        check_models=_serves,
    )


def _snapshot(state: StateStore, store: ChunkStore, root: Path, feedback: FeedbackStore) -> Path:
    target = root / "c.sieve"
    take_snapshot(
        target,
        tenant=TENANT,
        name=COLL,
        state=state,
        store=store,
        blobs=LocalBlobStore(root / "blobs"),
        feedback=feedback,
        extras={"evaluation.json": b'{"ndcg": 0.5}'},
        scratch=root,
    )
    return target


@pytest.mark.parametrize("kind", ["edge", "server"])
def test_round_trip_keeps_ids_and_scores_without_the_model(
    source: tuple[StateStore, ChunkStore, Path], kind: str, redis_url: str
) -> None:
    state, store, root = source
    feedback = FeedbackStore(state.raw())
    feedback.add(TENANT, COLL, Judgment(query="alpha", document_id="d1", relevant=True))
    logged = QueryLogConfig(sample_rate=1.0, max_entries=10, ttl_s=60)
    state.patch_collection(TENANT, COLL, query_log=logged)
    before = _answers(store, STORE)
    chunks = store.count(STORE)
    bundle_path = _snapshot(state, store, root, feedback)
    # Restored as another name into a second Sieve (another tenant, another store).
    with chunk_store(kind, root / "dst") as (target, _):
        bundle = open_bundle(bundle_path, root, max_expanded_bytes=1 << 30)
        try:
            assert bundle.manifest.counts["documents"] == len(DOCS)
            assert bundle.read_extra("evaluation.json") == b'{"ndcg": 0.5}'
            result = restore_bundle(
                bundle,
                tenant="u",
                name="copy",
                state=state,
                store=target,
                blobs=LocalBlobStore(root / "blobs2"),
                feedback=feedback,
                check_models=_serves,
            )
        finally:
            bundle.close()
        rec = state.get_collection("u", "copy")
        assert rec.policy == state.get_collection(TENANT, COLL).policy
        assert state.get_collection(TENANT, COLL).query_log == logged
        assert rec.query_log is None  # opt-in: the copy's holder turns it on
        assert (result.documents, result.chunks) == (len(DOCS), chunks)
        after = _answers(target, rec.store_name)
        for want, got in zip(before, after, strict=True):
            assert [i for i, _ in got] == [i for i, _ in want]
            assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-3)
        docs, total = state.list_documents("u", "copy", limit=100)
        assert total == len(DOCS)
        assert all(d.status is DocStatus.INDEXED for d in docs)
        assert state.document_counts("u", "copy") == {"indexed": len(DOCS)}
        assert [j.document_id for j in feedback.list("u", "copy")] == ["d1"]
        # Their expiry came along, and into the index queries and the sweep read.
        assert {d.expires_at for d in docs} == {EXPIRES_AT}
        assert state.raw().zcard("sieve:expiry:u:copy") == len(DOCS)
        # It is an ordinary collection: a delete of a restored document removes its points.
        assert target.count(rec.store_name) == chunks


def _tamper(path: Path, out: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        out.write_bytes(data[: len(data) // 2])
        return
    if how == "foreign":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("manifest.json")
            body = b'{"format": "something-else"}'
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        out.write_bytes(zstandard.ZstdCompressor().compress(buf.getvalue()))
        return
    # corrupted: one byte of one member changed, the archive itself still well formed
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    at = raw.index(b"alpha beta")
    flipped = raw[:at] + b"ALPHA" + raw[at + 5 :]
    out.write_bytes(zstandard.ZstdCompressor().compress(flipped))


def test_a_bad_bundle_is_refused_before_anything_is_written(
    source: tuple[StateStore, ChunkStore, Path],
) -> None:
    state, store, root = source
    bundle_path = _snapshot(state, store, root, FeedbackStore(state.raw()))
    keys = set(state.raw().keys("*"))
    for how in ("truncated", "corrupted", "foreign"):
        bad = root / f"{how}.sieve"
        _tamper(bundle_path, bad, how)
        with pytest.raises(InvalidInput) as err:
            open_bundle(bad, root, max_expanded_bytes=1 << 30)
        assert err.value.code == "bad_bundle", how
        assert set(state.raw().keys("*")) == keys
        assert [p.name for p in root.glob("restore-*")] == []  # the scratch is gone too
    with pytest.raises(InvalidInput) as err:
        open_bundle(bundle_path, root, max_expanded_bytes=1000)
    assert err.value.code == "bundle_too_large"


def test_unserved_models_are_refused_and_a_failed_restore_leaves_nothing(
    source: tuple[StateStore, ChunkStore, Path],
) -> None:
    state, store, root = source
    bundle = open_bundle(
        _snapshot(state, store, root, FeedbackStore(state.raw())), root, max_expanded_bytes=1 << 30
    )
    blobs = LocalBlobStore(root / "blobs")
    restore = _restorer(bundle, state, store, blobs)
    try:

        def serves_nothing(models: BundleModels) -> None:
            raise InvalidInput("not served", code="models_not_served")

        with pytest.raises(InvalidInput):
            restore(
                name="x",
                check_models=serves_nothing,
            )
        assert state.find_collection(TENANT, "x") is None
        # The name of an existing collection is refused, and that collection is untouched.
        with pytest.raises(Conflict):
            restore(name=COLL)
        assert state.document_counts(TENANT, COLL) == {"indexed": len(DOCS)}
        stores_before = set(_store_names(store))

        def die() -> None:
            raise RuntimeError("killed mid-restore")

        with pytest.raises(RuntimeError):
            restore(
                name="half",
                after_points=die,
            )
        with pytest.raises(NotFound):
            state.get_collection(TENANT, "half")
        assert state.list_documents(TENANT, "half") == ([], 0)
        assert _store_names(store) == stores_before
        # The name is free again: the same restore then succeeds.
        restore(name="half")
        assert state.document_counts(TENANT, "half") == {"indexed": len(DOCS)}
    finally:
        bundle.close()


def _store_names(store: ChunkStore) -> set[str]:
    root = getattr(store, "root")  # noqa: B009 - the Edge store of the fixture
    return {p.name for p in Path(root).iterdir() if (p / "collection.json").is_file()}


def test_a_snapshot_during_a_delete_holds_each_document_once_or_not_at_all(
    source: tuple[StateStore, ChunkStore, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point in time: a document deleted while the snapshot runs is in it whole or absent,
    and the deletes skip no other document (pages of 2: positions shift under them)."""
    monkeypatch.setattr("indexing.snapshot._PAGE", 2)
    state, store, root = source
    queue, _, _, runner, writer = _workers(state, store, root)
    victims = ["d2", "d5"]

    class _DeletingStore:
        """Before the snapshot reads a document, the deletes of both victims run."""

        def __init__(self) -> None:
            self.fired = False

        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

        def document_points(self, name: str, document_id: str) -> list[ChunkPoint]:
            if not self.fired and document_id == "d3":
                self.fired = True
                for victim in victims:
                    delete_document(state, queue, tenant=TENANT, collection=COLL, doc_id=victim)
                _drain(queue, runner, writer)
            return store.document_points(name, document_id)

    target = root / "pit.sieve"
    take_snapshot(
        target,
        tenant=TENANT,
        name=COLL,
        state=state,
        store=cast(ChunkStore, _DeletingStore()),
        blobs=LocalBlobStore(root / "blobs"),
        feedback=None,
        scratch=root,
    )
    bundle = open_bundle(target, root, max_expanded_bytes=1 << 30)
    try:
        ids = [d["id"] for d in bundle.documents()]
        assert "d5" not in ids  # read after its delete: absent
        assert ids.count("d2") == 1  # read before it: whole (all its chunks, one version)
        assert ids == [d for d in DOCS if d != "d5"]
        chunks = list(bundle.chunks())
        by_doc: dict[str, list[int]] = {}
        for chunk in chunks:
            by_doc.setdefault(chunk["payload"]["document_id"], []).append(
                chunk["payload"]["chunk_no"]
            )
        counts = {d["id"]: d["chunk_count"] for d in bundle.documents()}
        assert {d: sorted(c) for d, c in by_doc.items()} == {
            d: list(range(n)) for d, n in counts.items()
        }
        assert all(isinstance(c["dense"], list) and c["late"] is not None for c in chunks)
        assert np.isfinite(np.asarray([c["dense"] for c in chunks])).all()
    finally:
        bundle.close()


def _redis_dump(state: StateStore) -> dict[str, object]:
    raw = state.raw()
    return {str(key): raw.dump(key) for key in sorted(raw.keys("*"))}


def test_a_restore_past_a_quota_is_refused_before_anything_is_written(
    source: tuple[StateStore, ChunkStore, Path],
) -> None:
    """Collections, documents and stored bytes: each refused with the quota named, and not
    one Redis key, store collection or blob written (the generation counter included)."""
    state, store, root = source
    bundle = open_bundle(
        _snapshot(state, store, root, FeedbackStore(state.raw())), root, max_expanded_bytes=1 << 30
    )
    held = sum(d.size for d in state.list_documents(TENANT, COLL, limit=100)[0])
    blobs = LocalBlobStore(root / "restored-blobs")
    restore = _restorer(bundle, state, store, blobs)
    try:
        before, stores = _redis_dump(state), _store_names(store)
        refusals = {
            "collections": {"max_collections": 1},
            "documents": {"quota": TenantQuota(documents=2 * len(DOCS) - 1)},
            "stored_bytes": {"quota": TenantQuota(stored_bytes=2 * held - 1)},
        }
        for quota, bound in refusals.items():
            with pytest.raises(QuotaExceeded) as err:
                restore(
                    name="copy",
                    **bound,  # type: ignore[arg-type]
                )
            assert err.value.quota == quota
            assert "this restore adds" in err.value.message or quota == "collections"
            assert _redis_dump(state) == before, quota
            assert _store_names(store) == stores
            assert list(blobs.keys()) == []
        # At the quota exactly, it fits.
        restore(
            name="copy",
            max_collections=2,
            quota=TenantQuota(documents=2 * len(DOCS), stored_bytes=2 * held),
        )
        assert state.document_counts(TENANT, "copy") == {"indexed": len(DOCS)}
    finally:
        bundle.close()


def test_a_quota_taken_while_the_restore_runs_is_refused_at_its_commit(
    source: tuple[StateStore, ChunkStore, Path],
) -> None:
    """The check before writing is repeated atomically at the commit: an upload that took
    the last documents meanwhile wins, and the restore leaves nothing."""
    state, store, root = source
    queue, blobs, _, _, _ = _workers(state, store, root)
    bundle = open_bundle(
        _snapshot(state, store, root, FeedbackStore(state.raw())), root, max_expanded_bytes=1 << 30
    )
    restore = _restorer(bundle, state, store, blobs)
    stores = _store_names(store)

    def upload_meanwhile() -> None:
        item = UploadItem(doc_id="late", source="late.txt", data=b"one more document")
        accept(state, blobs, queue, LIMITS, tenant=TENANT, collection=COLL, items=[item])

    try:
        with pytest.raises(QuotaExceeded) as err:
            restore(
                name="copy",
                quota=TenantQuota(documents=2 * len(DOCS)),
                after_points=upload_meanwhile,
            )
        assert (err.value.quota, err.value.current) == ("documents", len(DOCS) + 1)
        assert state.find_collection(TENANT, "copy") is None
        assert state.raw().keys(f"sieve:*:{TENANT}:copy*") == []
        assert state.raw().hlen("sieve:restores") == 0
        assert _store_names(store) == stores
    finally:
        bundle.close()


def test_a_restore_whose_process_died_is_removed_once_its_owner_expired(
    source: tuple[StateStore, ChunkStore, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a kill -9 leaves (the undo never runs) is removed by the sweep, or by the next
    restore of the name, once the dead owner's lease expired; a live owner's is kept."""
    state, store, root = source
    bundle = open_bundle(
        _snapshot(state, store, root, FeedbackStore(state.raw())), root, max_expanded_bytes=1 << 30
    )
    blobs = LocalBlobStore(root / "blobs")
    restore = _restorer(bundle, state, store, blobs)
    stores = _store_names(store)

    class Killed(BaseException):
        """Stands for SIGKILL: nothing after it runs."""

    def kill() -> None:
        raise Killed

    def half(name: str, owner: str) -> None:
        with monkeypatch.context() as patch:
            patch.setattr("indexing.restore._Restore.undo", lambda self: None)
            with pytest.raises(Killed):
                restore(
                    name=name,
                    owner=owner,
                    after_points=kill,
                )

    def restore_alive(name: str) -> None:
        restore(name=name, owner="alive-owner")

    try:
        state.heartbeat("alive-owner", 60)
        state.heartbeat("slow-owner", 60)
        half("a", "slow-owner")
        half("b", "slow-owner")
        assert _store_names(store) - stores  # points written, under no collection
        # Its owner still beats: nothing is taken from it, and the name stays reserved.
        assert clear_abandoned_restores(state, store, None) == 0
        with pytest.raises(Conflict) as err:
            restore_alive("a")
        assert err.value.code == "collection_deleting"
        state.retire("slow-owner")  # what a dead process's lease does after its TTL
        # The next restore of the name clears the dead one first, then succeeds.
        restore_alive("a")
        assert state.document_counts(TENANT, "a") == {"indexed": len(DOCS)}
        # The sweep clears the other: no key, no store collection left of it.
        assert clear_abandoned_restores(state, store, None) == 1
        assert state.raw().keys(f"sieve:*:{TENANT}:b*") == []
        assert state.raw().hlen("sieve:restores") == 0
        assert _store_names(store) - stores == {state.get_collection(TENANT, "a").store_name}
        restore_alive("b")
        assert state.document_counts(TENANT, "b") == {"indexed": len(DOCS)}
    finally:
        bundle.close()
