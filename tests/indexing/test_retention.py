"""Retention over a real Redis and a real blob directory: what expires, and what never does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import NotFound
from indexing.blob_gc import BlobLedger, sweep_blobs
from indexing.changes import cancel_job
from indexing.records import CollectionRecord, DocStatus, DocumentRecord, JobRecord
from indexing.reindex_state import ReindexState
from indexing.state_store import NewDocument, StateStore, state_key
from ingest.blob_store import LocalBlobStore

RETENTION_S = 1.0
_JOB_PARTS = ("job", "jobdocs", "jobcnt", "joberr", "jobfin")


@pytest.fixture
def state(redis_url: str) -> Iterator[StateStore]:
    store = StateStore.from_url(redis_url, job_retention_s=RETENTION_S)
    store.raw().flushdb()
    for tenant in ("acme", "other"):
        store.create_collection(
            CollectionRecord(tenant=tenant, name="papers", embedding_model="m", dimension=4)
        )
    yield store
    store.close()


def _accept(
    state: StateStore, job: str, docs: dict[str, str | None], tenant: str = "acme"
) -> dict[str, int]:
    """Accept ``docs`` (id -> blob key; None: failed at upload) as job ``job``."""
    new = [
        NewDocument(
            DocumentRecord(id=i, job_id=job, content_hash=key, blob_key=key, size=1),
        )
        if key
        else NewDocument(
            DocumentRecord(id=i, job_id=job, status=DocStatus.FAILED), ("empty_document", "empty")
        )
        for i, key in docs.items()
    ]
    coll = state.get_collection(tenant, "papers")
    return state.accept(
        tenant,
        "papers",
        JobRecord(id=job, tenant=tenant, collection="papers"),
        new,
        incarnation=coll.incarnation,
    )


def _ttls_ms(state: StateStore, job: str) -> list[int]:
    return [int(state.raw().pttl(state_key(part, job))) for part in _JOB_PARTS]


def _doc_ttl(state: StateStore, doc_id: str) -> int:
    return int(state.raw().pttl(state_key("doc", "acme", "papers", doc_id)))


def test_a_finished_job_expires_and_neither_its_documents_nor_a_running_job_do(
    state: StateStore,
) -> None:
    v = _accept(state, "j1", {"d1": "a" * 64, "d2": "b" * 64})
    _accept(state, "j2", {"d3": "c" * 64})
    state.transition("acme", "papers", "d1", DocStatus.INDEXED, version=v["d1"])
    # One entry still queued: the job is live, nothing of it may expire.
    assert state.raw().pttl(state_key("job", "j1")) == -1
    state.transition(
        "acme", "papers", "d2", DocStatus.FAILED, version=v["d2"], error=("bad", "broken")
    )
    assert all(0 < ttl <= RETENTION_S * 1000 for ttl in _ttls_ms(state, "j1")), _ttls_ms(
        state, "j1"
    )
    # Cancelling a finished job rewrites its record: it must keep its TTL.
    cancel_job(state, tenant="acme", job_id="j1")
    assert 0 < state.raw().pttl(state_key("job", "j1")) <= RETENTION_S * 1000
    assert _doc_ttl(state, "d1") == _doc_ttl(state, "d2") == -1
    time.sleep(RETENTION_S + 0.3)
    with pytest.raises(NotFound):
        state.get_job("acme", "j1")
    assert not any(state.raw().exists(state_key(part, "j1")) for part in _JOB_PARTS)
    assert state.get_job("acme", "j2").total == 1
    assert {d.id for d in state.list_documents("acme", "papers")[0]} == {"d1", "d2", "d3"}
    assert state.get_document("acme", "papers", "d2").error_reason == "bad"


def test_a_job_finished_at_upload_or_superseded_expires_too(state: StateStore) -> None:
    _accept(state, "failed-only", {"x": None})
    _accept(state, "old", {"y": "a" * 64})
    _accept(state, "new", {"y": "b" * 64})  # supersedes "old"'s only entry
    for job in ("failed-only", "old"):
        assert all(0 < ttl <= RETENTION_S * 1000 for ttl in _ttls_ms(state, job)[:3]), job
    assert state.raw().pttl(state_key("job", "new")) == -1


def test_an_ended_reindex_job_expires(state: StateStore) -> None:
    rx = ReindexState(state.raw(), job_retention_s=RETENTION_S)
    state.raw().set(state_key("job", "rx1"), "{}")
    state.raw().hset(state_key("rx", "job", "rx1"), mapping={"state": "running"})
    assert rx.finish("rx1", "completed")
    for key in (state_key("job", "rx1"), state_key("rx", "job", "rx1")):
        assert 0 < state.raw().pttl(key) <= RETENTION_S * 1000


# ---------------------------------------------------------------- blobs


@pytest.fixture
def blobs(state: StateStore, tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs", before_write=BlobLedger(state.raw()).pin)


def _sweep(state: StateStore, blobs: LocalBlobStore) -> dict[str, int]:
    return sweep_blobs(state.raw(), blobs, retention_s=RETENTION_S, batch=10)


def test_blob_gc_removes_only_blobs_no_record_references(
    state: StateStore, blobs: LocalBlobStore
) -> None:
    live, old, new, orphan, tomb, shared = blobs.put_many(
        [b"live", b"replaced", b"replacement", b"never recorded", b"tombstoned", b"shared"]
    )
    _accept(state, "j1", {"live": live, "doc": old, "tomb": tomb, "mine": shared})
    _accept(state, "j1b", {"theirs": shared}, tenant="other")
    _accept(state, "j2", {"doc": new})  # the old version's blob is referenced no more
    state.delete("acme", "papers", "tomb")  # its points may still be served: kept
    tombstone = state.delete("acme", "papers", "mine")
    state.forget("acme", "papers", "mine", tombstone)  # gone here, live for "other"
    assert state.find_document("acme", "papers", "mine") is None

    assert _sweep(state, blobs)["deleted"] == 0  # marked now: deleted a retention later
    time.sleep(RETENTION_S + 0.2)
    assert _sweep(state, blobs)["deleted"] == 2
    assert set(blobs.keys()) == {live, new, tomb, shared}
    assert not blobs.exists(old)
    assert not blobs.exists(orphan)


def test_a_blob_unreferenced_and_uploaded_again_is_kept(
    state: StateStore, blobs: LocalBlobStore
) -> None:
    (key,) = blobs.put_many([b"content"])
    _sweep(state, blobs)  # unreferenced: marked
    time.sleep(RETENTION_S + 0.2)
    assert blobs.put(b"content") == key  # the upload pins it (the file was there already)
    assert _sweep(state, blobs)["deleted"] == 0
    assert blobs.exists(key)


def test_a_re_upload_racing_the_delete_writes_the_blob_again(
    state: StateStore, blobs: LocalBlobStore
) -> None:
    ledger = BlobLedger(state.raw())
    key = blobs.put(b"raced")
    ledger.mark([key], time.time() - 100)
    state.raw().zadd(state_key("blobgc"), {key: time.time() - 100})
    cutoff = time.time() - 10
    assert ledger.claim(key, cutoff, "sweeper")  # the sweep is about to unlink it
    done = threading.Event()

    def upload() -> None:
        blobs.put(b"raced")
        done.set()

    worker = threading.Thread(target=upload)
    worker.start()
    time.sleep(0.3)
    assert not done.is_set()  # the upload waits for the delete in progress
    blobs.delete(key)
    ledger.release(key, cutoff, "sweeper")
    worker.join(timeout=5)
    assert done.is_set()
    assert blobs.get(key) == b"raced"  # written again, not reused as it vanished
    assert not ledger.claim(key, cutoff, "sweeper")  # pinned since the cutoff: kept


def test_the_pages_a_records_image_manifest_lists_are_kept(
    state: StateStore, blobs: LocalBlobStore
) -> None:
    import json  # noqa: PLC0415

    from ingest.page_store import PageImageManifest, StoredPage  # noqa: PLC0415

    source, page, stray = blobs.put_many([b"scan.tiff", b"page one png", b"a page of nothing"])
    stored = StoredPage(key=page, mime="image/png", width=10, height=10, size=12)
    manifest = blobs.put(PageImageManifest(source=source, pages={1: stored}).encode())
    _accept(state, "j1", {"scan": source})
    # The worker names only the manifest in the record; the pages are in the manifest.
    doc_key = state_key("doc", "acme", "papers", "scan")
    state.raw().hset(doc_key, "page_images", json.dumps(manifest))
    _sweep(state, blobs)
    time.sleep(RETENTION_S + 0.2)
    assert _sweep(state, blobs)["deleted"] == 1
    assert set(blobs.keys()) == {source, page, manifest}
    assert not blobs.exists(stray)
