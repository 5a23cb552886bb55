"""What only the embedded store has: files on disk, reopen, and the one-owner lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.errors import Conflict, InvalidInput, SieveError, StoreLocked
from core.types import StoreCollectionSpec
from retriever.edge_store import EdgeChunkStore
from tests.retriever.corpus import COLLECTION, SPEC, chunk, corpus_points, unit, zebra_query

_PROBE = textwrap.dedent(
    """
    import sys
    from core.errors import StoreLocked
    from retriever.edge_store import EdgeChunkStore
    try:
        EdgeChunkStore(sys.argv[1]).close()
    except StoreLocked as exc:
        print("LOCKED", exc.code, exc)
    else:
        print("OPENED")
    """
)


def _probe_from_another_process(root: Path) -> str:
    # A fresh interpreter (fork+exec): never fork a process that holds an Edge store.
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return done.stdout.strip()


def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    store = EdgeChunkStore(tmp_path)
    store.create_collection(SPEC)
    store.create_collection(StoreCollectionSpec(name="other", dense_size=8, sparse=False))
    store.upsert(COLLECTION, corpus_points())
    before = store.query(COLLECTION, zebra_query())
    store.close()

    reopened = EdgeChunkStore(tmp_path)
    try:
        assert reopened.collection_exists(COLLECTION)
        assert reopened.collection_exists("other")
        assert reopened.count(COLLECTION) == 4
        after = reopened.query(COLLECTION, zebra_query())
        assert [(h.id, h.score) for h in after] == [(h.id, h.score) for h in before]
        # the spec came back too: a wrong size is still refused
        with pytest.raises(InvalidInput):
            reopened.upsert("other", [chunk("d", 0, "x", unit(1.0), collection="other")])
    finally:
        reopened.close()


def test_optimized_data_survives_reopen(tmp_path: Path) -> None:
    store = EdgeChunkStore(tmp_path)
    store.create_collection(SPEC)
    store.upsert(COLLECTION, corpus_points())
    store.optimize(COLLECTION)
    store.close()
    reopened = EdgeChunkStore(tmp_path)
    try:
        assert reopened.count(COLLECTION) == 4
    finally:
        reopened.close()


def test_second_process_gets_store_locked_naming_the_directory(tmp_path: Path) -> None:
    root = tmp_path / "data"
    store = EdgeChunkStore(root)
    try:
        store.create_collection(SPEC)
        out = _probe_from_another_process(root)
        assert out.startswith("LOCKED store_locked")
        assert str(root.resolve()) in out
        assert "only one process" in out
    finally:
        store.close()
    # released on close: now the other process may own it
    assert _probe_from_another_process(root) == "OPENED"


def test_opening_twice_in_one_process_is_refused_the_same_way(tmp_path: Path) -> None:
    store = EdgeChunkStore(tmp_path)
    try:
        with pytest.raises(StoreLocked, match="only one process") as info:
            EdgeChunkStore(tmp_path)
        assert str(tmp_path.resolve()) in str(info.value)
        store.create_collection(SPEC)
        assert store.count(COLLECTION) == 0
    finally:
        store.close()


def test_shard_held_by_raw_edge_in_another_process_maps_to_store_locked(tmp_path: Path) -> None:
    store = EdgeChunkStore(tmp_path)
    store.create_collection(SPEC)
    store.close()
    shard_dir = tmp_path / COLLECTION / "shard"
    holder = subprocess.Popen(  # holds the shard's own lock, not our directory lock
        [
            sys.executable,
            "-c",
            "import sys, qdrant_edge as q\n"
            f"s = q.EdgeShard.load({str(shard_dir)!r})\n"
            "print('held', flush=True)\nsys.stdin.read()\ns.close()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        # Shards open on first use: that use is refused, and the store still works.
        store = EdgeChunkStore(tmp_path)
        try:
            with pytest.raises(StoreLocked) as info:
                store.count(COLLECTION)
            assert str(tmp_path.resolve()) in str(info.value)
            assert store.open_collections() == 0
        finally:
            store.close()
    finally:
        holder.communicate("", timeout=30)
    reopened = EdgeChunkStore(tmp_path)  # and the failed open released the shard again
    try:
        assert reopened.count(COLLECTION) == 0
    finally:
        reopened.close()


def test_interrupted_create_leaves_nothing_behind(tmp_path: Path) -> None:
    scratch = tmp_path / ".tmp-deadbeef"
    (scratch / "shard").mkdir(parents=True)
    store = EdgeChunkStore(tmp_path)
    try:
        assert not scratch.exists()
        assert not store.collection_exists("deadbeef")
    finally:
        store.close()


def test_stray_directory_with_collection_name_is_a_conflict(tmp_path: Path) -> None:
    (tmp_path / COLLECTION).mkdir()
    store = EdgeChunkStore(tmp_path)
    try:
        assert not store.collection_exists(COLLECTION)
        with pytest.raises(Conflict):
            store.create_collection(SPEC)
    finally:
        store.close()


def test_wrong_vector_never_reaches_the_wal(tmp_path: Path) -> None:
    # qdrant-edge 0.9 replays a refused upsert from its WAL on reopen; refuse it before.
    store = EdgeChunkStore(tmp_path)
    store.create_collection(SPEC)
    with pytest.raises(InvalidInput):
        store.upsert(COLLECTION, [chunk("d", 0, "x", [1.0, 0.0, 0.0])])
    store.close()
    reopened = EdgeChunkStore(tmp_path)
    try:
        assert reopened.count(COLLECTION) == 0
    finally:
        reopened.close()


def test_close_is_idempotent_and_final(tmp_path: Path) -> None:
    store = EdgeChunkStore(tmp_path)
    store.create_collection(SPEC)
    store.close()
    store.close()
    for call in (
        lambda: store.collection_exists(COLLECTION),
        lambda: store.create_collection(SPEC),
        lambda: store.optimize(COLLECTION),
    ):
        with pytest.raises(SieveError) as info:
            call()
        assert info.value.code == "store_closed"
