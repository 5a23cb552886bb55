"""The embedded store's flush interval: every write flushed at once (0), or (the default)
each write's write-ahead log fsynced before it returns and the written shards flushed by a
background thread; a killed process loses nothing either way."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from core.types import StoreCollectionSpec
from retriever.edge_store import EdgeChunkStore
from tests.retriever.corpus import DIM, corpus_points

ROOT = Path(__file__).resolve().parents[2]


def _spec(name: str) -> StoreCollectionSpec:
    return StoreCollectionSpec(name=name, dense_size=DIM)


def test_with_no_interval_every_write_is_flushed_before_it_returns(tmp_path: Path) -> None:
    store = EdgeChunkStore(tmp_path, search_threads=1, flush_interval_s=0)
    try:
        store.create_collection(_spec("c"))
        store.upsert("c", corpus_points("a"))
        store.upsert("c", corpus_points("b"))
        assert (store.flushes, store.wal_syncs) == (2, 0)
        assert store.flush_written() == 0
    finally:
        store.close()


def _wal_dirty_kib() -> int:
    """Pages of this process's maps of write-ahead log files not yet written back (KiB):
    ``/proc/self/smaps`` counts a mapped page dirty until writeback cleans it."""
    dirty, in_wal = 0, False
    with Path("/proc/self/smaps").open() as smaps:
        for line in smaps:
            fields = line.split()
            if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
                in_wal = len(fields) > 5 and "/shard/wal/" in fields[5]
            elif in_wal and fields[0] in ("Shared_Dirty:", "Private_Dirty:"):
                dirty += int(fields[1])
    return dirty


def test_by_default_a_write_returns_with_its_write_ahead_log_on_disk(tmp_path: Path) -> None:
    # Edge's update() writes the log through a map and syncs nothing; the store fsyncs
    # the log before the write returns, so a power loss cannot take an acknowledged write.
    store = EdgeChunkStore(tmp_path, search_threads=1)
    try:
        store.create_collection(_spec("c"))
        store.upsert("c", corpus_points("a"))
        assert (store.flushes, store.wal_syncs) == (0, 1)
        assert _wal_dirty_kib() == 0
        # The measure can see an unsynced log: the same write without the sync leaves it dirty.
        synced = store._sync_wal
        store._sync_wal = lambda name: None  # type: ignore[method-assign]
        store.upsert("c", corpus_points("b"))
        assert _wal_dirty_kib() > 0
        store._sync_wal = synced  # type: ignore[method-assign]
        store.delete_document("c", "alpha")
        assert _wal_dirty_kib() == 0
        assert store.wal_syncs == 2
    finally:
        store.close()


def test_with_an_interval_written_shards_are_flushed_once_per_pass(tmp_path: Path) -> None:
    store = EdgeChunkStore(tmp_path, search_threads=1, flush_interval_s=60)
    try:
        for name in ("c1", "c2"):
            store.create_collection(_spec(name))
        for n in range(3):
            store.upsert("c1", corpus_points(f"a{n}"))
        store.upsert("c2", corpus_points("b"))
        assert store.flushes == 0
        assert store.flush_written() == 2  # three writes to c1, one to c2: two flushes
        assert store.flush_written() == 0  # nothing written since
        assert store.count("c1") == 4 * 3
    finally:
        store.close()


def test_the_background_thread_flushes_within_the_interval(tmp_path: Path) -> None:
    store = EdgeChunkStore(tmp_path, search_threads=1, flush_interval_s=0.1)
    try:
        store.create_collection(_spec("c"))
        store.upsert("c", corpus_points("a"))
        deadline = time.monotonic() + 10
        while store.flushes == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.flushes >= 1
    finally:
        store.close()


def test_evicting_closing_and_dropping_an_unflushed_shard(tmp_path: Path) -> None:
    store = EdgeChunkStore(tmp_path, search_threads=1, max_open=1, flush_interval_s=60)
    try:
        for name in ("c0", "c1", "gone"):
            store.create_collection(_spec(name))
        store.upsert("c0", corpus_points("a"))
        store.upsert("c1", corpus_points("b"))  # evicts c0, which is flushed first
        assert store.flushes == 1
        store.upsert("gone", corpus_points("g"))
        store.drop_collection("gone")  # dropped unflushed: nothing to flush
    finally:
        store.close()  # flushes c1
    reopened = EdgeChunkStore(tmp_path)
    try:
        assert (reopened.count("c0"), reopened.count("c1")) == (4, 4)
        assert not reopened.collection_exists("gone")
    finally:
        reopened.close()


def test_a_killed_process_loses_no_unflushed_write(tmp_path: Path) -> None:
    # Writes are in the shard's write-ahead log when they return: SIGKILL before any flush,
    # and loading the shard replays them.
    script = textwrap.dedent(
        f"""
        import os, signal
        from core.types import StoreCollectionSpec
        from retriever.edge_store import EdgeChunkStore
        from tests.retriever.corpus import DIM, corpus_points
        store = EdgeChunkStore({str(tmp_path)!r}, search_threads=1, flush_interval_s=60)
        store.create_collection(StoreCollectionSpec(name="k", dense_size=DIM))
        for n in range(25):
            store.upsert("k", corpus_points(f"p{{n}}"))
        store.delete_document("k", "alpha")
        assert store.flushes == 0
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    store = EdgeChunkStore(tmp_path)
    try:
        # 25 writes of the four documents' chunks (ids differ by write), then one
        # document's 25 chunks deleted.
        assert store.count("k") == 25 * 4 - 25
    finally:
        store.close()
