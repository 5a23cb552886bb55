"""The embedded store opens collections lazily and keeps at most ``max_open`` idle ones open:
bounded threads per collection, and closing never races an operation in flight."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from core.errors import NotFound
from core.types import StoreCollectionSpec
from retriever.edge_store import EdgeChunkStore
from tests.retriever.corpus import DIM, corpus_points, zebra_query


def _spec(n: int) -> StoreCollectionSpec:
    return StoreCollectionSpec(name=f"c{n}", dense_size=DIM)


def test_many_collections_cost_bounded_threads_and_open_shards(tmp_path: Path) -> None:
    me = psutil.Process()
    before = me.num_threads()
    store = EdgeChunkStore(tmp_path, search_threads=1, max_open=3)
    try:
        for n in range(8):
            store.create_collection(_spec(n))
            store.upsert(f"c{n}", corpus_points(f"c{n}"))
        for n in range(8):
            assert [h.payload.document_id for h in store.query(f"c{n}", zebra_query())][:1] == [
                "alpha"
            ]
        assert store.open_collections() == 3
        # Edge's default pool is one thread per CPU, for every collection, for good.
        assert me.num_threads() - before <= 3 * 1 + 2
    finally:
        store.close()
    reopened = EdgeChunkStore(tmp_path, max_open=2)
    try:
        assert reopened.open_collections() == 0  # nothing opened at start-up
        assert all(reopened.count(f"c{n}") == 4 for n in range(8))
        assert reopened.open_collections() == 2
    finally:
        reopened.close()


def test_eviction_and_drop_never_close_a_shard_in_use(tmp_path: Path) -> None:
    store = EdgeChunkStore(tmp_path, search_threads=1, max_open=2)
    names = [f"c{n}" for n in range(4)]
    for n in range(4):
        store.create_collection(_spec(n))
        store.upsert(f"c{n}", corpus_points(f"c{n}"))
    errors: list[BaseException] = []
    stop = threading.Event()

    def churn(worker: int) -> int:
        done = 0
        while not stop.is_set() and done < 12:
            name = names[(worker + done) % len(names)]
            try:
                if done % 3 == 0:
                    store.upsert(name, corpus_points(name))
                assert store.count(name) == 4
                assert len(store.query(name, zebra_query())) == 4
            except NotFound:
                assert name == "c3"  # only the dropped one may go away
            except BaseException as exc:
                errors.append(exc)
                raise
            done += 1
        return done

    try:
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(churn, w) for w in range(4)]
            store.drop_collection("c3")  # waits for its operations in flight
            results = [f.result(timeout=120) for f in futures]
        assert not errors
        assert sum(results) == 4 * 12
        assert not store.collection_exists("c3")
        assert not (tmp_path / "c3").exists()
        assert store.open_collections() <= 2
        with pytest.raises(NotFound):
            store.count("c3")
    finally:
        stop.set()
        store.close()


def test_a_drop_waiting_for_a_shard_in_use_goes_on_when_the_use_ends(tmp_path: Path) -> None:
    # The end of a lease woke nobody: a drop that waited for the shard to be idle slept
    # until some unrelated open or close happened to notify.
    store = EdgeChunkStore(tmp_path, search_threads=1)
    try:
        store.create_collection(_spec(0))
        store.upsert("c0", corpus_points("c0"))
        in_use, finish, dropped = threading.Event(), threading.Event(), threading.Event()

        def hold() -> None:
            with store._lease("c0"):
                in_use.set()
                finish.wait(30)

        def drop() -> None:
            store.drop_collection("c0")
            dropped.set()

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        assert in_use.wait(30)
        threading.Thread(target=drop, daemon=True).start()
        assert not dropped.wait(0.2), "the drop must wait for the shard in use"
        finish.set()
        holder.join(30)
        assert dropped.wait(5), "the drop did not go on when the use ended"
        assert not store.collection_exists("c0")
    finally:
        store.close()
