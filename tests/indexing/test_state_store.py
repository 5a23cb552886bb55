"""The Redis state store, against a real Redis server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import indexing
from core.errors import Conflict, NotFound, UpstreamUnavailable
from indexing.changes import cancel_job
from indexing.records import (
    JOB_TERMINAL,
    SUPERSEDED,
    CollectionRecord,
    DocStatus,
    DocumentRecord,
    JobRecord,
    JobState,
    store_name_for,
)
from indexing.state_store import DocRef, NewDocument, Owner, StateStore, Transition


@pytest.fixture
def state(redis_url: str) -> Iterator[StateStore]:
    store = StateStore.from_url(redis_url)
    store.raw().flushdb()
    yield store
    store.close()


def _coll(tenant: str = "acme", name: str = "papers") -> CollectionRecord:
    return CollectionRecord(tenant=tenant, name=name, embedding_model="m", dimension=4)


def test_collections_are_per_tenant_and_unique(state: StateStore) -> None:
    state.create_collection(_coll())
    with pytest.raises(Conflict, match="already exists"):
        state.create_collection(_coll())
    state.create_collection(_coll(tenant="other"))
    assert [c.name for c in state.list_collections("acme")] == ["papers"]
    assert state.get_collection("acme", "papers").store_name == "acme__papers"  # legacy
    assert store_name_for("acme", "b__x") != store_name_for("acme__b", "x")
    with pytest.raises(NotFound):
        state.get_collection("acme", "missing")
    state.delete_collection("acme", "papers")
    assert state.list_collections("acme") == []
    assert [c.tenant for c in state.list_collections("other")] == ["other"]


def _accept(
    state: StateStore, job: str, ids: list[str], *, content: str = "h", tenant: str = "acme"
) -> dict[str, int]:
    docs = [
        NewDocument(DocumentRecord(id=i, job_id=job, content_hash=f"{content}-{i}", size=1))
        for i in ids
    ]
    coll = state.find_collection(tenant, "papers") or state.create_collection(_coll(tenant))
    return state.accept(
        tenant,
        "papers",
        JobRecord(id=job, tenant=tenant, collection="papers"),
        docs,
        incarnation=coll.incarnation,
    )


def test_documents_page_in_upload_order_and_filter_by_status(state: StateStore) -> None:
    versions = _accept(state, "j1", [f"d{i}" for i in range(5)])
    assert sorted(versions.values()) == list(
        range(min(versions.values()), max(versions.values()) + 1)
    )
    state.transition(
        "acme", "papers", "d3", DocStatus.FAILED, version=versions["d3"], error=("x", "bad")
    )
    page, total = state.list_documents("acme", "papers", offset=1, limit=2)
    assert ([d.id for d in page], total) == (["d1", "d2"], 5)
    failed, total = state.list_documents("acme", "papers", status=DocStatus.FAILED)
    assert ([d.id for d in failed], total) == (["d3"], 1)
    assert failed[0].error_reason == "x"
    assert state.document_counts("acme", "papers") == {"queued": 4, "failed": 1}
    assert state.total_counts() == {"queued": 4, "failed": 1}


def test_unchanged_content_keeps_its_version_and_a_change_supersedes(state: StateStore) -> None:
    first = _accept(state, "j1", ["a", "b"])
    assert _accept(state, "j2", ["a"]) == {"a": 0}  # same content: nothing to do
    newer = _accept(state, "j3", ["a"], content="new")
    assert newer["a"] > first["a"]
    # The old job's task for "a" is stale: its claim is refused, the job still ends.
    stale = state.transition(
        "acme", "papers", "a", DocStatus.PARSING, version=first["a"], owner=Owner.claim("w1")
    )
    assert stale == Transition(False, "stale")
    assert state.get_job("acme", "j1").documents == {"a": SUPERSEDED, "b": "queued"}
    state.transition("acme", "papers", "b", DocStatus.INDEXED, version=first["b"])
    view = state.get_job("acme", "j1")
    assert (view.state, view.counts) == (JobState.COMPLETED, {"superseded": 1, "indexed": 1})
    assert view.finished_at is not None
    assert state.get_job("acme", "j3").state is JobState.QUEUED


def test_claims_are_exclusive_while_the_owner_lives(state: StateStore) -> None:
    v = _accept(state, "j1", ["a"])["a"]
    state.heartbeat("w1", ttl_s=30)
    claim = Owner.claim
    assert state.transition("acme", "papers", "a", DocStatus.PARSING, version=v, owner=claim("w1"))
    assert state.running() == [DocRef("acme", "papers", "a")]
    # A second worker (a redelivered message) cannot take it from a live owner.
    taken = state.transition(
        "acme",
        "papers",
        "a",
        DocStatus.PARSING,
        version=v,
        from_=[DocStatus.QUEUED],
        owner=claim("w2"),
    )
    assert not taken.applied
    assert not state.transition(
        "acme", "papers", "a", DocStatus.EMBEDDING, version=v, owner=Owner.hold("w2")
    ).applied
    assert state.reap(DocRef("acme", "papers", "a"), max_crashes=3) == ("alive", v)
    assert state.transition(
        "acme", "papers", "a", DocStatus.WRITING, version=v, owner=Owner.mine("w1")
    ).applied
    assert state.running() == []


def test_a_dead_owner_is_reaped_then_failed_as_worker_crashed(state: StateStore) -> None:
    v = _accept(state, "j1", ["a"])["a"]
    ref = DocRef("acme", "papers", "a")
    for n in range(1, 4):
        assert state.transition(
            "acme", "papers", "a", DocStatus.PARSING, version=v, owner=Owner.claim(f"dead{n}")
        ).applied
        result = state.reap(ref, max_crashes=3)
        doc = state.get_document("acme", "papers", "a")
        assert doc.crashes == n
        if n < 3:
            assert (result, doc.status) == (("requeued", v), DocStatus.QUEUED)
    assert (doc.status, doc.error_reason) == (DocStatus.FAILED, "worker_crashed")
    view = state.get_job("acme", "j1")
    assert view.state is JobState.COMPLETED_WITH_ERRORS
    assert view.errors["a"]["reason"] == "worker_crashed"
    assert state.running() == []


def test_delete_wins_over_older_work_and_is_not_listed(state: StateStore) -> None:
    v = _accept(state, "j1", ["a", "b"])
    state.heartbeat("w1", ttl_s=30)
    state.transition(
        "acme", "papers", "a", DocStatus.EMBEDDING, version=v["a"], owner=Owner.claim("w1")
    )
    tomb = state.delete("acme", "papers", "a")
    assert tomb > v["a"]
    # The worker's late step for the old version is dropped; the job entry says why.
    assert state.transition(
        "acme", "papers", "a", DocStatus.WRITING, version=v["a"], owner=Owner.mine("w1")
    ) == Transition(False, "stale")
    assert state.get_job("acme", "j1").documents == {"a": "deleted", "b": "queued"}
    with pytest.raises(NotFound):
        state.get_document("acme", "papers", "a")
    page, total = state.list_documents("acme", "papers")
    assert ([d.id for d in page], total) == (["b"], 1)
    assert state.deleted_among("acme", "papers", ["a", "b"]) == {"a"}
    assert state.document_counts("acme", "papers") == {"queued": 1}
    with pytest.raises(NotFound):
        state.delete("acme", "papers", "a")
    assert not state.forget("acme", "papers", "a", v["a"])  # only the tombstone's version
    assert state.forget("acme", "papers", "a", tomb)
    assert state.find_document("acme", "papers", "a") is None
    assert state.deleted_among("acme", "papers", ["a"]) == set()
    assert state.total_counts() == {"queued": 1}


def test_cancel_and_collection_delete_end_every_job(state: StateStore) -> None:
    v = _accept(state, "j1", ["a", "b"])
    state.heartbeat("w1", ttl_s=30)
    state.transition(
        "acme", "papers", "a", DocStatus.PARSING, version=v["a"], owner=Owner.claim("w1")
    )
    view = cancel_job(state, tenant="acme", job_id="j1")
    assert view.documents == {"a": "parsing", "b": "cancelled"}
    assert view.state is JobState.RUNNING
    state.transition(
        "acme", "papers", "a", DocStatus.CANCELLED, version=v["a"], owner=Owner.mine("w1")
    )
    assert state.get_job("acme", "j1").state is JobState.CANCELLED
    _accept(state, "j2", ["c"])
    state.delete_collection("acme", "papers")
    assert state.get_job("acme", "j2").state is JobState.COMPLETED
    assert state.total_counts() == {}


def test_job_views_list_small_jobs_and_count_large_ones(state: StateStore) -> None:
    _accept(state, "big", [f"d{i}" for i in range(30)])
    view = state.get_job("acme", "big", list_limit=10)
    assert (view.total, view.counts, view.documents) == (30, {"queued": 30}, None)
    with pytest.raises(NotFound):
        state.get_job("intruder", "big")


def test_the_script_and_python_agree_on_terminal_states() -> None:
    lua = (Path(indexing.__file__).parent / "lifecycle.lua").read_text()
    table = re.search(r"local TERMINAL = \{([^}]*)\}", lua)
    assert table is not None
    assert set(re.findall(r"(\w+) = true", table.group(1))) == set(JOB_TERMINAL)


def test_redis_down_is_upstream_unavailable() -> None:
    client = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    dead = StateStore(client)
    assert dead.ping() is False
    with pytest.raises(UpstreamUnavailable, match="state store"):
        dead.list_collections("acme")
