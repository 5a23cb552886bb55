"""The webhook outbox against a real Redis: events written by the lifecycle's own scripts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.errors import NotFound, QuotaExceeded
from indexing.changes import cancel_job
from indexing.records import CollectionRecord, DocStatus, DocumentRecord, JobRecord
from indexing.state_store import NewDocument, StateStore
from indexing.webhooks import (
    Delivery,
    Subscription,
    WebhookEvent,
    WebhookLimits,
    WebhookStore,
    new_secret,
)


@pytest.fixture
def state(redis_url: str) -> Iterator[StateStore]:
    store = StateStore.from_url(redis_url)
    store.raw().flushdb()
    yield store
    store.close()


@pytest.fixture
def hooks(state: StateStore) -> WebhookStore:
    store = WebhookStore(state.raw(), WebhookLimits(max_per_collection=2, outbox_max=50))
    store.configure()
    return store


def _subscribe(hooks: WebhookStore, *events: WebhookEvent, collection: str = "papers") -> str:
    sub = Subscription(
        id=hooks.new_id(),
        tenant="acme",
        collection=collection,
        url="https://example.com/hook",
        events=list(events or WebhookEvent),
        secret=new_secret(),
    )
    return hooks.add(sub).id


def _accept(state: StateStore, job: str, docs: list[NewDocument]) -> dict[str, int]:
    coll = state.find_collection("acme", "papers") or state.create_collection(
        CollectionRecord(tenant="acme", name="papers", embedding_model="m", dimension=4)
    )
    return state.accept(
        "acme",
        "papers",
        JobRecord(id=job, tenant="acme", collection="papers"),
        docs,
        incarnation=coll.incarnation,
    )


def _doc(doc_id: str, job: str) -> NewDocument:
    return NewDocument(DocumentRecord(id=doc_id, job_id=job, content_hash=f"h-{doc_id}", size=1))


def _due(hooks: WebhookStore) -> list[Delivery]:
    return hooks.claim(100, 60.0)


def test_a_job_that_ends_queues_one_event_per_subscription_in_the_same_step(
    state: StateStore, hooks: WebhookStore
) -> None:
    _accept(state, "j0", [_doc("d0", "j0")])  # before any subscription: no event
    state.transition("acme", "papers", "d0", DocStatus.INDEXED, job_id="j0")
    assert hooks.outbox_size() == 0
    done = _subscribe(hooks, WebhookEvent.JOB_COMPLETED)
    every = _subscribe(hooks)
    versions = _accept(state, "j1", [_doc("a", "j1"), _doc("b", "j1")])
    state.transition("acme", "papers", "a", DocStatus.INDEXED, version=versions["a"])
    assert hooks.outbox_size() == 0  # the job is not over yet
    state.transition("acme", "papers", "b", DocStatus.INDEXED, version=versions["b"])
    got = sorted(_due(hooks), key=lambda d: d.sub)
    assert sorted(d.sub for d in got) == sorted([done, every])
    for d in got:
        assert d.type == "job.completed"
        assert d.attempt == 1
        assert d.data == {
            "collection": "papers",
            "job_id": "j1",
            "kind": "ingest",
            "state": "completed",
            "counts": {"indexed": 2},
        }
    assert got[0].msg_id != got[1].msg_id
    assert got[0].body() == got[0].body()  # the same bytes at every attempt


def test_failed_documents_and_jobs_and_cancelled_jobs(
    state: StateStore, hooks: WebhookStore
) -> None:
    _subscribe(hooks)
    failed_at_upload = NewDocument(
        DocumentRecord(id="bad", job_id="j1", status=DocStatus.FAILED, content_hash="x"),
        error=("unsupported_type", "not a document"),
    )
    versions = _accept(state, "j1", [_doc("a", "j1"), failed_at_upload])
    state.transition(
        "acme", "papers", "a", DocStatus.FAILED, version=versions["a"], error=("no_text", "empty")
    )
    events = {(d.type, d.data.get("document_id")): d.data for d in _due(hooks)}
    assert set(events) == {
        ("document.failed", "bad"),
        ("document.failed", "a"),
        ("job.failed", None),
    }
    assert events["document.failed", "a"]["reason"] == "no_text"
    assert events["document.failed", "bad"]["message"] == "not a document"
    assert events["job.failed", None]["state"] == "completed_with_errors"
    assert events["job.failed", None]["counts"] == {"failed": 2}

    _accept(state, "j2", [_doc("c", "j2")])
    cancel_job(state, tenant="acme", job_id="j2")
    (cancelled,) = _due(hooks)
    assert cancelled.type == "job.cancelled"
    assert cancelled.data["counts"] == {"cancelled": 1}


def test_claimed_deliveries_come_back_after_their_lease_and_settle_once(
    state: StateStore, hooks: WebhookStore
) -> None:
    sub = _subscribe(hooks, WebhookEvent.SNAPSHOT_COMPLETED)
    assert hooks.emit("acme", "papers", WebhookEvent.SNAPSHOT_COMPLETED, {"job_id": "s1"}) == 1
    assert hooks.emit("acme", "papers", WebhookEvent.JOB_COMPLETED, {}) == 0  # not subscribed
    (first,) = hooks.claim(10, lease_s=0.2)
    assert hooks.claim(10, lease_s=0.2) == []  # leased: nobody else takes it
    (again,) = hooks.claim(10, lease_s=60, now=first.created + 1)  # the sender died
    assert (again.id, again.msg_id, again.attempt) == (first.id, first.msg_id, 2)
    hooks.settle(again, {"status": "retrying", "attempt": 2}, retry_at=first.created + 5)
    assert hooks.claim(10, 60, now=first.created + 4) == []
    (third,) = hooks.claim(10, 60, now=first.created + 6)
    hooks.settle(third, {"status": "delivered", "attempt": 3}, retry_at=None)
    hooks.settle(third, {"status": "delivered", "attempt": 3}, retry_at=None)  # no-op
    assert hooks.outbox_size() == 0
    rows, total = hooks.deliveries(sub, offset=0, limit=10)
    assert total == 2
    assert [r["status"] for r in rows] == ["delivered", "retrying"]  # newest first


def test_bounds_on_subscriptions_outbox_and_logs(state: StateStore, hooks: WebhookStore) -> None:
    sub = _subscribe(hooks, WebhookEvent.SNAPSHOT_COMPLETED)
    _subscribe(hooks, WebhookEvent.JOB_FAILED)
    with pytest.raises(QuotaExceeded, match="2 webhook subscriptions"):
        _subscribe(hooks)
    _subscribe(hooks, collection="other")  # the cap is per collection
    for i in range(55):
        hooks.emit("acme", "papers", WebhookEvent.SNAPSHOT_COMPLETED, {"n": i})
    assert hooks.outbox_size() == 50
    assert hooks.dropped() == 5
    rows, total = hooks.deliveries(sub, offset=0, limit=100)
    assert total == 5
    assert {r["error"] for r in rows} == {"outbox_full"}
    ttl = state.raw().pttl(f"sieve:wh:log:{sub}")
    assert 0 < ttl <= hooks.limits.log_ttl_s * 1000

    hooks.remove("acme", "papers", sub)
    with pytest.raises(NotFound):
        hooks.remove("acme", "papers", sub)
    assert hooks.deliveries(sub, offset=0, limit=10) == ([], 0)


def test_log_keeps_the_newest_log_max_attempts(state: StateStore) -> None:
    hooks = WebhookStore(state.raw(), WebhookLimits(log_max=3))
    hooks.configure()
    sub = _subscribe(hooks, WebhookEvent.SNAPSHOT_COMPLETED)
    hooks.emit("acme", "papers", WebhookEvent.SNAPSHOT_COMPLETED, {})
    for attempt in range(1, 6):
        (d,) = hooks.claim(1, 60, now=10**10 + attempt * 100)
        hooks.settle(d, {"attempt": attempt}, retry_at=0.0)
    rows, total = hooks.deliveries(sub, offset=0, limit=10)
    assert total == 3
    assert [r["attempt"] for r in rows] == [5, 4, 3]


def test_deleting_the_collection_drops_its_subscriptions(
    state: StateStore, hooks: WebhookStore
) -> None:
    _accept(state, "j1", [_doc("a", "j1")])
    _subscribe(hooks)
    state.delete_collection("acme", "papers")
    assert hooks.subscriptions("acme", "papers") == []


def test_a_reindex_that_ends_emits_its_event_once(state: StateStore, hooks: WebhookStore) -> None:
    from indexing.reindex_state import ReindexState  # noqa: PLC0415

    rx = ReindexState(state.raw())
    _subscribe(hooks)
    for job, end in (("r1", "completed"), ("r2", "failed")):
        state.raw().hset(
            f"sieve:rx:job:{job}",
            mapping={"tenant": "acme", "collection": "papers", "state": "running"},
        )
        assert rx.finish(job, end, "embed_failed" if end == "failed" else "", "")
        assert not rx.finish(job, end)  # ended once: no second event
    events = {d.data["job_id"]: d for d in _due(hooks)}
    assert events["r1"].type == "reindex.completed"
    assert events["r2"].type == "job.failed"
    assert events["r2"].data["kind"] == "reindex"
    assert events["r2"].data["reason"] == "embed_failed"
