"""Expiry in the lifecycle over a real Redis: queries drop an expired document at once
(no sweep needed), re-uploads move the expiry coherently, and the sweep's delete is the
ordinary tombstone and leaves a renewed document alone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import cast

import pytest

from indexing.records import CollectionRecord, DocStatus, DocumentRecord, JobRecord
from indexing.state_store import NewDocument, StateStore, state_key

T, C = "acme", "papers"


@pytest.fixture
def state(redis_url: str) -> Iterator[StateStore]:
    store = StateStore.from_url(redis_url)
    store.raw().flushdb()
    store.create_collection(CollectionRecord(tenant=T, name=C, embedding_model="m", dimension=4))
    yield store
    store.close()


def _accept(
    state: StateStore, job: str, docs: dict[str, tuple[str, float | None]]
) -> dict[str, int]:
    """Accept ``docs`` (id -> (content hash, expires_at)) as job ``job``."""
    new = [
        NewDocument(
            DocumentRecord(id=i, job_id=job, content_hash=h, blob_key=h, size=1, expires_at=at)
        )
        for i, (h, at) in docs.items()
    ]
    inc = state.get_collection(T, C).incarnation
    return state.accept(T, C, JobRecord(id=job, tenant=T, collection=C), new, incarnation=inc)


def _index(state: StateStore, doc_id: str, version: int) -> None:
    assert state.transition(T, C, doc_id, DocStatus.INDEXED, version=version).applied


def _expiry(state: StateStore) -> dict[str, float]:
    rows = cast(
        list[tuple[str, float]],
        state.raw().zrange(state_key("expiry", T, C), 0, -1, withscores=True),
    )
    return {str(i): float(s) for i, s in rows}


def test_an_expired_document_is_dropped_by_queries_at_once(state: StateStore) -> None:
    now = time.time()
    _accept(state, "j1", {"soon": ("a" * 64, now + 60), "never": ("b" * 64, None)})
    ids = ["soon", "never", "unknown"]
    assert state.deleted_among(T, C, ids, now=now) == set()
    assert state.deleted_among(T, C, ids, now=now + 60) == {"soon"}
    # Nothing was swept: the record is still there and says when it expired.
    doc = state.get_document(T, C, "soon")
    assert doc.status is DocStatus.QUEUED
    assert doc.expires_at == pytest.approx(now + 60)
    assert state.get_document(T, C, "never").expires_at is None


def test_a_reupload_sets_the_expiry_even_when_the_content_is_unchanged(state: StateStore) -> None:
    now = time.time()
    v1 = _accept(state, "j1", {"d": ("a" * 64, now + 10)})["d"]
    _index(state, "d", v1)
    # Same bytes, a later expiry: no new version, but the expiry moves.
    assert _accept(state, "j2", {"d": ("a" * 64, now + 100)}) == {"d": 0}
    assert state.get_document(T, C, "d").expires_at == pytest.approx(now + 100)
    assert state.deleted_among(T, C, ["d"], now=now + 50) == set()
    # Same bytes, no expiry (and no collection default): it never expires any more.
    assert _accept(state, "j3", {"d": ("a" * 64, None)}) == {"d": 0}
    assert state.get_document(T, C, "d").expires_at is None
    assert _expiry(state) == {}


def test_a_failed_reupload_puts_the_live_versions_expiry_back(state: StateStore) -> None:
    now = time.time()
    v1 = _accept(state, "j1", {"d": ("a" * 64, now + 10)})["d"]
    _index(state, "d", v1)
    v2 = _accept(state, "j2", {"d": ("c" * 64, now + 500)})["d"]
    assert _expiry(state) == {"d": pytest.approx(now + 500)}
    state.transition(T, C, "d", DocStatus.FAILED, version=v2, error=("parse_error", "bad"))
    doc = state.get_document(T, C, "d")
    assert (doc.version, doc.status) == (v1, DocStatus.INDEXED)
    assert doc.expires_at == pytest.approx(now + 10)
    assert _expiry(state) == {"d": pytest.approx(now + 10)}


def test_the_sweep_tombstones_only_what_is_still_expired(state: StateStore) -> None:
    now = time.time()
    versions = _accept(
        state,
        "j1",
        {"old": ("a" * 64, now + 1), "renewed": ("b" * 64, now + 1), "later": ("c" * 64, now + 99)},
    )
    for doc_id, v in versions.items():
        _index(state, doc_id, v)
    _accept(state, "j2", {"renewed": ("b" * 64, now + 200)})  # renewed before the sweep ran
    done = state.expire_due(T, C, now=now + 2, limit=10)
    assert [d for d, _ in done] == ["old"]
    tomb = state.find_document(T, C, "old")
    assert tomb is not None
    assert (tomb.status, tomb.version) == (DocStatus.DELETED, done[0][1])
    assert set(_expiry(state)) == {"renewed", "later"}
    assert state.deleted_among(T, C, ["old", "renewed", "later"], now=now + 2) == {"old"}
    # The tombstone's store write then forgets it, as for a client's delete.
    assert state.forget(T, C, "old", done[0][1])
    assert state.find_document(T, C, "old") is None
    assert state.expire_due(T, C, now=now + 2, limit=10) == []


def test_deletes_and_collection_deletion_leave_no_expiry_behind(state: StateStore) -> None:
    now = time.time()
    _accept(state, "j1", {"a": ("a" * 64, now + 5), "b": ("b" * 64, now + 5)})
    state.delete(T, C, "a")
    assert set(_expiry(state)) == {"b"}
    state.delete_collection(T, C)
    assert not state.raw().exists(state_key("expiry", T, C))
