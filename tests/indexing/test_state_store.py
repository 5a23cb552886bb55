"""The Redis state store, against a real Redis server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.errors import Conflict, NotFound, UpstreamUnavailable
from indexing.records import CollectionRecord, DocStatus, DocumentRecord, JobRecord, JobState
from indexing.state_store import StateStore


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
    assert state.get_collection("acme", "papers").store_name == "acme__papers"
    with pytest.raises(NotFound):
        state.get_collection("acme", "missing")
    state.delete_collection("acme", "papers")
    assert state.list_collections("acme") == []
    assert [c.tenant for c in state.list_collections("other")] == ["other"]


def test_documents_page_in_upload_order_and_filter_by_status(state: StateStore) -> None:
    docs = [DocumentRecord(id=f"d{i}", job_id="j1") for i in range(5)]
    state.put_documents("acme", "papers", docs)
    state.update_document("acme", "papers", "d3", status=DocStatus.FAILED, error_reason="x")
    page, total = state.list_documents("acme", "papers", offset=1, limit=2)
    assert ([d.id for d in page], total) == (["d1", "d2"], 5)
    failed, total = state.list_documents("acme", "papers", status=DocStatus.FAILED)
    assert ([d.id for d in failed], total) == (["d3"], 1)
    assert state.document_counts("acme", "papers") == {"queued": 4, "failed": 1}


def test_stale_job_cannot_touch_a_document_taken_over_by_a_newer_job(state: StateStore) -> None:
    state.put_documents("acme", "papers", [DocumentRecord(id="d", job_id="old")])
    state.put_documents("acme", "papers", [DocumentRecord(id="d", job_id="new")])
    assert state.update_document("acme", "papers", "d", job_id="old", status="indexed") is None
    updated = state.update_document("acme", "papers", "d", job_id="new", status="indexed")
    assert updated is not None
    assert state.get_document("acme", "papers", "d").status is DocStatus.INDEXED
    assert state.update_document("acme", "papers", "gone", status="indexed") is None


def test_job_state_and_counts_are_derived_from_documents(state: StateStore) -> None:
    job = JobRecord(id="j1", tenant="acme", collection="papers")
    state.create_job(job, ["a", "b", "c"])
    view = state.get_job("acme", "j1")
    assert (view.state, view.counts) == (JobState.QUEUED, {"queued": 3})
    state.set_job_doc("j1", "a", DocStatus.PARSING)
    assert state.get_job("acme", "j1").state is JobState.RUNNING
    state.set_job_doc("j1", "a", DocStatus.INDEXED)
    state.set_job_doc("j1", "b", DocStatus.INDEXED)
    state.set_job_doc("j1", "c", DocStatus.FAILED)
    view = state.get_job("acme", "j1")
    assert view.state is JobState.COMPLETED_WITH_ERRORS
    assert view.counts == {"indexed": 2, "failed": 1}
    with pytest.raises(NotFound):
        state.get_job("intruder", "j1")


def test_cancelled_job_is_cancelled_once_every_document_stopped(state: StateStore) -> None:
    state.create_job(JobRecord(id="j2", tenant="acme", collection="papers"), ["a", "b"])
    assert state.cancel_job("acme", "j2").state is JobState.QUEUED
    state.set_job_doc("j2", "a", DocStatus.CANCELLED)
    state.set_job_doc("j2", "b", DocStatus.INDEXED)
    assert state.get_job("acme", "j2").state is JobState.CANCELLED


def test_redis_down_is_upstream_unavailable() -> None:
    client = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    dead = StateStore(client)
    assert dead.ping() is False
    with pytest.raises(UpstreamUnavailable, match="state store unavailable"):
        dead.list_collections("acme")
