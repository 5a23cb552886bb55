"""Property: uploads, replaces, deletes, ingest steps and store writes interleaved with every
step of a re-index (each of its store calls lets some of them run first) end with the
serving generation holding exactly each live document's current points, embedded by the
new model, and nothing else: no document lost, duplicated or resurrected.

Real Redis, the real store writer and re-indexer over each real store adapter, the real hub for
the re-index's vectors; the ingest pipeline embeds by a fixed function (as in
test_lifecycle_properties) and the task queue is the in-memory port the test drives.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.ids import point_id
from core.types import ChunkFilter, FieldEquals, StoreCollectionSpec
from indexing.accept import UploadItem, accept
from indexing.changes import delete_document
from indexing.messages import ReplaceWrite
from indexing.reaper import recover
from indexing.records import (
    MAX_STORE_NAME_CHARS,
    CollectionRecord,
    DocStatus,
    generation_store_name,
    store_name_for,
)
from indexing.reindex import ModelChange, Reindexer
from indexing.reindex_state import ReindexState
from indexing.state_store import StateStore
from ingest.embeddings_client import EmbeddingsClient
from retriever.store import ChunkStore
from tests.indexing.stores import STORE_KINDS, chunk_store
from tests.indexing.test_lifecycle_properties import LIMITS, Workers, _text, _workers

TENANT, COLL = "t", "c"
STORE = "t-c"
DOCS = ["a", "b", "c", "d"]
MODEL = "BAAI/bge-small-en-v1.5"


class _Interleaved:
    """The real store; before each call the re-indexer makes, some other work runs."""

    def __init__(self, store: ChunkStore, before: Callable[[], None]) -> None:
        self._store = store
        self._before = before

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name not in ("list_document_chunks", "upsert", "delete_document", "get"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._before()
            return attr(*args, **kwargs)

        return call


World = tuple[StateStore, ChunkStore, Path, EmbeddingsClient, Callable[[], None]]


@pytest.fixture(scope="module", params=STORE_KINDS)
def world(
    request: pytest.FixtureRequest,
    redis_url: str,
    hub_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    """Redis, the hub and one store of each kind (so the switch is checked in both modes)."""
    root = tmp_path_factory.mktemp("rxprops")
    state = StateStore.from_url(redis_url)
    hub = EmbeddingsClient(openai.OpenAI(base_url=hub_url, api_key="none", max_retries=0), MODEL)
    with chunk_store(request.param, root) as (store, empty):
        yield state, store, root, hub, empty
    state.close()


def _fresh(world: World) -> Workers:
    """Empty Redis and store, one collection of model "m" (4-d) and the workers over it."""
    state, store, root, _, empty = world
    state.raw().flushdb()
    empty()
    store.create_collection(StoreCollectionSpec(name=STORE, dense_size=4, sparse=True))
    state.create_collection(
        CollectionRecord(tenant=TENANT, name=COLL, embedding_model="m", dimension=4, store=STORE)
    )
    return _workers(state, store, root)


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("upload"), st.sampled_from(DOCS), st.integers(0, 2)),
        st.tuples(st.just("delete"), st.sampled_from(DOCS), st.just(0)),
        st.tuples(st.just("ingest"), st.integers(0, 5), st.just(0)),
        st.tuples(st.just("write"), st.integers(0, 5), st.just(0)),
        st.tuples(st.just("recover"), st.just(0), st.just(0)),
    ),
    max_size=30,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(before=_OPS, during=_OPS, per_call=st.integers(1, 3), rng=st.randoms(use_true_random=False))
def test_no_interleaving_with_a_reindex_loses_duplicates_or_resurrects_a_document(
    world: World,
    before: list[tuple[str, str | int, int]],
    during: list[tuple[str, str | int, int]],
    per_call: int,
    rng: random.Random,
) -> None:
    state, store, _, hub, _ = world
    queue, blobs, beat, runner, writer = _fresh(world)
    latest: dict[str, int | None] = {}
    results: list[str] = []

    def apply(op: str, arg: str | int, content: int) -> None:
        if op == "upload":
            doc = str(arg)
            item = UploadItem(doc_id=doc, source=doc, data=_text(doc, content).encode())
            accept(state, blobs, queue, LIMITS, tenant=TENANT, collection=COLL, items=[item])
            latest[doc] = content
        elif op == "delete" and latest.get(str(arg)) is not None:
            delete_document(state, queue, tenant=TENANT, collection=COLL, doc_id=str(arg))
            latest[str(arg)] = None
        elif op == "ingest" and queue.ingest:
            runner.run(queue.ingest.pop(int(arg) % len(queue.ingest)), last_attempt=False)
        elif op == "write" and queue.writes:
            results.append(writer.apply(queue.writes.pop(int(arg) % len(queue.writes))))
        elif op == "recover":
            recover(state, queue)

    for step in before:
        apply(*step)
    pending = list(during)

    def interleave() -> None:
        for _ in range(per_call):
            if pending:
                apply(*pending.pop(0))

    reindexer = Reindexer(
        state,
        cast(ChunkStore, _Interleaved(store, interleave)),
        hub,
        heartbeat=beat,
        batch_docs=1,
        drop_grace_s=0,
    )
    view = reindexer.start(TENANT, COLL, ModelChange(MODEL, 384, None, None))
    reindexer.stop()  # no background thread: the test runs the job itself, step by step
    reindexer._stop.clear()
    assert reindexer.run(view.job.id) == "completed"
    for step in pending:
        apply(*step)

    # Drain: everything left, in a random order (writes paused by the switch come back).
    for _ in range(500):
        if queue.ingest and (not queue.writes or rng.random() < 0.5):
            apply("ingest", rng.randrange(len(queue.ingest)), 0)
        elif queue.writes:
            apply("write", rng.randrange(len(queue.writes)), 0)
        else:
            recover(state, queue)
            if not (queue.ingest or queue.writes):
                break
    assert not queue.ingest
    assert not queue.writes

    rec = state.get_collection(TENANT, COLL)
    assert (rec.embedding_model, rec.dimension, rec.reindex) == (MODEL, 384, None)
    assert rec.store_name != STORE
    assert not store.collection_exists(STORE), "the old generation was not dropped"
    serving = rec.store_name
    total = 0
    for doc in DOCS:
        record = state.find_document(TENANT, COLL, doc)
        have = store.count(serving, ChunkFilter(must=[FieldEquals(key="document_id", value=doc)]))
        if record is None or record.status is DocStatus.DELETED:
            assert have == 0, f"{doc}: deleted, yet {have} points remain"
            continue
        assert record.status is DocStatus.INDEXED, record
        assert latest[doc] is not None
        points = store.get(serving, [point_id(STORE, doc, i) for i in range(have)])
        assert len(points) == have == record.chunk_count
        assert all(f"{doc}{latest[doc]}w" in p.payload.text for p in points), "stale content"
        assert all(len(p.dense) == 384 for p in points)
        total += have
    assert store.count(serving) == total, "points of no live document"
    assert not ReindexState(state.raw()).active()


def test_a_write_of_an_older_generation_is_embedded_again(
    world: World,
) -> None:
    state, store, root, _, _ = world
    state.raw().flushdb()
    if not store.collection_exists(STORE):
        store.create_collection(StoreCollectionSpec(name=STORE, dense_size=4, sparse=True))
    state.create_collection(
        CollectionRecord(
            tenant=TENANT, name=COLL, embedding_model="m", dimension=4, store=STORE, generation=7
        )
    )
    queue, blobs, _, runner, writer = _workers(state, store, root)
    item = UploadItem(doc_id="a", source="a", data=_text("a", 0).encode())
    accept(state, blobs, queue, LIMITS, tenant=TENANT, collection=COLL, items=[item])
    runner.run(queue.ingest.pop(), last_attempt=False)
    fresh = queue.writes.pop()
    assert isinstance(fresh, ReplaceWrite)
    assert fresh.generation == 7
    stale = fresh.model_copy(update={"generation": 6})
    assert writer.apply(stale) == "regenerated"
    assert store.count(STORE) == 0
    assert state.get_document(TENANT, COLL, "a").status is DocStatus.QUEUED
    assert [d.id for d in queue.ingest[-1].docs] == ["a"]
    # Paused writes wait (sent again), and nothing reaches the store meanwhile.
    rx = ReindexState(state.raw())
    state.raw().set("sieve:rx:pause:t:c", "job")
    assert writer.apply(fresh) == "paused"
    assert queue.writes == [fresh]
    assert rx.live_writers(TENANT, COLL) == 0


def test_generation_store_names_are_injective_and_bounded() -> None:
    names: Sequence[tuple[str, str]] = [("a", "x"), ("a", "x-g1"), ("1-a", "x"), ("ab", "x")]
    seen = set()
    for tenant, name in names:
        base = store_name_for(tenant, name)
        seen.add(base)
        for generation in (1, 12, 123):
            seen.add(generation_store_name(base, generation))
    assert len(seen) == len(names) * 4
    longest = store_name_for("t" * 48, "n" * 64)
    assert len(generation_store_name(longest, 10**8)) <= MAX_STORE_NAME_CHARS
    with pytest.raises(InvalidInput, match="re-indexed store name"):
        generation_store_name(longest, 10**12)


LATE_MODEL = "answerdotai/answerai-colbert-small-v1-384"


def test_adding_and_removing_late_interaction_keeps_the_dense_vectors(world: World) -> None:
    """The dense model "m" is not on the hub: re-embedding a dense vector would fail, so
    both re-indexes succeed only if they copy the dense vectors (and, removing, embed nothing)."""
    state, store, _, hub, _ = world
    queue, blobs, beat, runner, writer = _fresh(world)
    for doc in DOCS:
        item = UploadItem(doc_id=doc, source=doc, data=_text(doc, 0).encode())
        accept(state, blobs, queue, LIMITS, tenant=TENANT, collection=COLL, items=[item])
    while queue.ingest:
        runner.run(queue.ingest.pop(), last_attempt=False)
    while queue.writes:
        writer.apply(queue.writes.pop())
    ids = [point_id(STORE, doc, 0) for doc in DOCS]
    before = {p.id: p.dense for p in store.get(STORE, ids)}
    assert len(before) == len(DOCS)

    reindexer = Reindexer(state, store, hub, heartbeat=beat, batch_docs=2, drop_grace_s=0)
    for late_model, late_dimension in ((LATE_MODEL, 384), (None, None)):
        view = reindexer.start(TENANT, COLL, ModelChange("m", 4, late_model, late_dimension))
        reindexer.stop()  # the test runs the job itself, not the background thread
        reindexer._stop.clear()
        assert reindexer.run(view.job.id) == "completed", state.get_job(TENANT, view.job.id)
        rec = state.get_collection(TENANT, COLL)
        assert (rec.embedding_model, rec.late_model) == ("m", late_model)
        points = store.get(rec.store_name, ids)
        assert {p.id: p.dense for p in points} == before
        if late_model is None:
            assert all(p.late is None for p in points)
        else:
            assert all(p.late is not None and p.late.dim == 384 for p in points)
