"""``ChunkStore`` on Qdrant Edge: one in-process shard per collection under a data directory.

Edge locks a shard to one process. This store also holds an exclusive lock on the whole
data directory, so a second owner fails at start-up with ``StoreLocked`` instead of on
whichever collection it touches first (architecture.md: only the API process owns it).

An open shard costs its search pool's threads and ~27 MiB of mapped payload-index pages
(measured: 200 open empty collections cost 1,602 threads and 5.6 GiB), so shards are
opened on first use and the least recently used idle one is closed once more than
``max_open`` are open. Every operation holds a lease on its shard: a shard in use is
never closed under it (eviction, drop and close wait for its leases to end).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import qdrant_edge as edge

from core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    SieveError,
    StoreLocked,
    UpstreamUnavailable,
)
from core.files import fsync_path
from core.types import (
    ChunkFilter,
    ChunkPoint,
    HybridQuery,
    LegScores,
    QueryMode,
    ScoredHit,
    SparseVec,
    StoreCollectionSpec,
)
from retriever.edge_shard_files import ShardRequest, shard_config
from retriever.filters import document_filter, to_edge_filter
from retriever.fusion import LegHit, fuse_late, fuse_legs, tie_score
from retriever.layout import (
    DENSE_VECTOR,
    LATE_VECTOR,
    PAYLOAD_INDEXES,
    SPARSE_VECTOR,
    canonical_id,
    check_points,
    check_query,
    dense_list,
    late_from_stored,
    late_mean_tokens,
    late_rows,
    payload_from_stored,
    payload_to_stored,
    trusted_builder,
)
from retriever.store import StoredChunk

__all__ = ["EdgeChunkStore"]

_SPEC_FILE = "collection.json"
_SHARD_DIR = "shard"
_WAL_DIR = "wal"  # Edge's write-ahead log, inside the shard directory
_LOCK_FILE = ".sieve-store.lock"
_TMP_PREFIX = ".tmp-"  # collection names start with [A-Za-z0-9]: no clash possible
_SCROLL_PAGE = 1024
_SHARD_FILES_SCRIPT = str(Path(__file__).with_name("edge_shard_files.py"))
_CREATE_TIMEOUT_S = 120.0
# Library defaults agree with StoreSettings (SIEVE_QDRANT_SEARCH_THREADS, ..._MAX_OPEN_COLLECTIONS,
# ..._FLUSH_INTERVAL_S).
DEFAULT_SEARCH_THREADS = 2
DEFAULT_MAX_OPEN = 16
# Qdrant server's own default (``flush_interval_sec``); SIEVE_QDRANT_FLUSH_INTERVAL_S.
DEFAULT_FLUSH_INTERVAL_S = 5.0


def _locked_message(root: Path) -> str:
    return (
        f"the embedded store at {root} is already open in another process (or twice in "
        "this one): only one process may own the embedded store's data directory. Stop "
        "the other owner, or point this process at a different SIEVE_QDRANT_PATH."
    )


@contextlib.contextmanager
def _edge_errors(root: Path, name: str | None = None) -> Iterator[None]:
    """The one place Edge's exceptions (plain ``Exception``/``ValueError``) become ours."""
    try:
        yield
    except SieveError:
        raise
    except Exception as exc:
        text = str(exc)
        where = f"collection {name!r}: " if name else ""
        if "WouldBlock" in text:
            raise StoreLocked(_locked_message(root)) from exc
        if "not initialized" in text:
            raise SieveError("the chunk store is closed", code="store_closed") from exc
        if isinstance(exc, ValueError) or any(
            marker in text for marker in ("dimension error", "Wrong input", "Bad input")
        ):
            raise InvalidInput(f"{where}{text}") from exc
        raise UpstreamUnavailable(f"{where}embedded store error: {text}") from exc


def _shard_request(spec: StoreCollectionSpec, search_threads: int | None) -> ShardRequest:
    """The collection's shard in the plain values ``edge_shard_files`` takes."""
    return ShardRequest(
        names=(DENSE_VECTOR, SPARSE_VECTOR, LATE_VECTOR),
        dense_size=spec.dense_size,
        distance=spec.distance.value,
        sparse=spec.sparse,
        late_size=spec.late_size,
        search_threads=search_threads,
        indexes=tuple((i.field, i.kind.value, i.is_tenant) for i in PAYLOAD_INDEXES),
    )


def _create_shard_files(path: Path, request: ShardRequest, timeout_s: float) -> None:
    """Create a shard in a child process (``edge_shard_files``: Edge holds the GIL while it
    creates one; waiting on a child does not).

    Raises:
        Exception: Edge's own message when the child fails (``_edge_errors`` maps it).
    """
    try:
        done = subprocess.run(  # noqa: S603 - our interpreter, our file, no shell
            [sys.executable, "-I", _SHARD_FILES_SCRIPT, str(path)],
            input=request.to_json(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise UpstreamUnavailable(
            f"the embedded store took over {timeout_s:.0f} s to create a collection"
        ) from exc
    if done.returncode != 0:
        raise Exception(done.stderr.strip()[-2000:] or f"exit status {done.returncode}")  # noqa: TRY002


def _edge_point(point: ChunkPoint) -> edge.Point:
    vector: dict[str, Any] = {DENSE_VECTOR: point.dense}
    if point.sparse is not None:
        vector[SPARSE_VECTOR] = edge.SparseVector(point.sparse.indices, point.sparse.values)
    if point.late is not None:
        vector[LATE_VECTOR] = late_rows(point.late)
    return edge.Point(canonical_id(point.id), vector, payload_to_stored(point.payload))


def _chunk_point(record: edge.Record) -> ChunkPoint:
    vectors = record.vector if isinstance(record.vector, dict) else {}
    sparse = vectors.get(SPARSE_VECTOR)
    return ChunkPoint.model_construct(
        id=str(record.id),
        dense=dense_list(vectors.get(DENSE_VECTOR)),
        sparse=None
        if not isinstance(sparse, edge.SparseVector)
        else SparseVec.model_construct(indices=sparse.indices, values=sparse.values),
        payload=payload_from_stored(record.payload),
        late=late_from_stored(vectors.get(LATE_VECTOR)),
    )


# The query fast path. The legs ask for no payload: Edge loads and converts a payload for
# every candidate it returns, holding the interpreter lock (~1.3 ms of a 1.4 ms query of
# two 50-candidate legs), so only the hits kept after fusion are read again with theirs
# (``_with_payloads``). Edge builds a new ``uuid.UUID`` on every ``point.id`` read, so
# each is read once. Legs are ranked and fused on ``UUID.int``: UUIDs order as their
# canonical strings, so this is the order ``fuse_legs`` gives on string ids (an integer or
# string id has no ``.int``, and such a query takes ``_generic_rows``). Tests in
# tests/retriever/test_edge_fast_path.py pin the equivalence with ``fuse_legs``.

_Ranked = list[tuple[float, int, float, uuid.UUID]]
_Row = tuple[Any, float, LegScores]  # a fused hit: (the id as Edge gives it, score, scores)
_NO_LEG_SCORES: dict[str, float | int | None] = dict.fromkeys(LegScores.model_fields)


def _ranked(points: Sequence[edge.ScoredPoint]) -> _Ranked:
    """One leg in ``rank_leg`` order: (tie score, id as int, score, id), best first."""
    rows: _Ranked = []
    for point in points:
        score = point.score
        pid: uuid.UUID = point.id  # type: ignore[assignment]  # else AttributeError below
        rows.append((tie_score(score), pid.int, score, pid))
    rows.sort()  # ids are unique in a leg
    return rows


_scored_hit = trusted_builder(ScoredHit)
_leg_scores = trusted_builder(LegScores)


def _one_leg_rows(points: Sequence[edge.ScoredPoint], leg: str, limit: int) -> list[_Row]:
    """``fuse_legs`` for a single-leg mode: the leg's order and raw scores."""
    rank_field = f"{leg}_rank"
    return [
        (pid, score, _leg_scores({**_NO_LEG_SCORES, leg: score, rank_field: rank}))
        for rank, (_, _, score, pid) in enumerate(_ranked(points)[:limit], start=1)
    ]


def _hybrid_rows(
    dense: Sequence[edge.ScoredPoint], sparse: Sequence[edge.ScoredPoint], query: HybridQuery
) -> list[_Row]:
    """``fuse_legs`` in hybrid mode: same arithmetic, same order, same tie-breaks."""
    k = query.rrf_k
    w_dense, w_sparse = query.weights.dense, query.weights.sparse
    # key -> [dense, dense_rank, sparse, sparse_rank, fused, id]
    rows: dict[int, list[Any]] = {}
    for rank, (_, key, score, pid) in enumerate(_ranked(dense), start=1):
        rows[key] = [score, rank, None, None, w_dense / (k + rank), pid]
    for rank, (_, key, score, pid) in enumerate(_ranked(sparse), start=1):
        row = rows.get(key)
        if row is None:
            rows[key] = [None, None, score, rank, 0.0 + w_sparse / (k + rank), pid]
        else:
            row[2], row[3] = score, rank
            row[4] += w_sparse / (k + rank)
    # fuse_legs' order: fused score, then the best rank in any leg, then id.
    ordered = sorted(
        (
            -row[4],
            row[3] if row[1] is None else row[1] if row[3] is None else min(row[1], row[3]),
            key,
            row,
        )
        for key, row in rows.items()
    )
    return [
        (
            pid,
            fused,
            _leg_scores(
                {
                    "dense": d_score,
                    "dense_rank": d_rank,
                    "sparse": s_score,
                    "sparse_rank": s_rank,
                    "fused": fused,
                    "late": None,
                }
            ),
        )
        for _, _, _, (d_score, d_rank, s_score, s_rank, fused, pid) in ordered[: query.limit]
    ]


def _generic_rows(query: HybridQuery, results: Sequence[Sequence[edge.ScoredPoint]]) -> list[_Row]:
    """Fuse on string ids: for points whose ids are not UUIDs."""
    ids: dict[str, Any] = {}
    leg_hits: list[list[LegHit]] = []
    for result in results:
        hits: list[LegHit] = []
        for point in result:
            pid = point.id
            ids[str(pid)] = pid
            hits.append((str(pid), point.score))
        leg_hits.append(hits)
    fused = fuse_legs(
        query.mode,
        leg_hits[0] if query.mode is not QueryMode.SPARSE else [],
        leg_hits[-1] if query.mode is not QueryMode.DENSE else [],
        weights=query.weights,
        k=query.rrf_k,
        limit=query.limit,
    )
    return [(ids[hit.id], hit.score, hit.scores) for hit in fused]


def _with_payloads(rows: Sequence[_Row], records: Sequence[edge.Record]) -> list[ScoredHit]:
    """The fused hits with the payloads ``records`` (read by their ids) hold, in the fused
    order; a hit whose point is gone (deleted since the legs ran) is left out."""
    payloads = {record.id: record.payload for record in records}  # ids as Edge gives them
    hits: list[ScoredHit] = []
    for pid, score, scores in rows:
        stored = payloads.get(pid)
        if stored is not None:
            hits.append(
                _scored_hit(
                    {
                        "id": str(pid),
                        "score": score,
                        "scores": scores,
                        "payload": payload_from_stored(stored),
                    }
                )
            )
    return hits


@dataclass(eq=False)
class _Slot:
    """One collection's shard while it is being opened, open, or being closed."""

    shard: edge.EdgeShard | None = None
    state: str = "opening"  # "opening" -> "open" -> "closing"
    users: int = 0
    unflushed: int = 0  # writes since the last flush (with a flush interval only)


class EdgeChunkStore:
    """``ChunkStore`` on Qdrant Edge; ``root_dir/<collection>/`` holds each shard and spec.

    ``search_threads`` is each open shard's search pool; at most ``max_open`` shards are
    open at once while idle (one in use is never closed, so more may be open briefly).

    ``flush_interval_s`` 0 flushes every write before it returns. Edge's ``flush()`` holds
    the interpreter lock ~20 ms (it syncs every segment file of the shard), so in a
    serving process each write stalls every request for that long. Above 0 a write
    returns once the shard's write-ahead log is on disk (:meth:`_sync_wal`: ``fsync`` of
    the log's files, which does not hold the interpreter lock), and a background thread
    flushes the written shards that often (and a shard is flushed before it is closed).
    Edge replays the log when it loads a shard, so a written point survives a killed
    process and a power loss either way.

    Raises:
        StoreLocked: another process (or another store in this one) owns ``root_dir``.
    """

    def __init__(
        self,
        root_dir: Path | str,
        *,
        search_threads: int | None = DEFAULT_SEARCH_THREADS,
        max_open: int = DEFAULT_MAX_OPEN,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
    ) -> None:
        if max_open < 1:
            raise ValueError("max_open must be at least 1")
        if flush_interval_s < 0:
            raise ValueError("flush_interval_s must not be negative")
        self.root = Path(root_dir).resolve()
        self._search_threads = search_threads
        self._max_open = max_open
        self._flush_interval_s = flush_interval_s
        self.flushes = 0  # shard flushes so far (for tests and metrics)
        self.wal_syncs = 0  # write-ahead log syncs so far (with a flush interval)
        self._flusher: threading.Thread | None = None
        self._stop_flusher = threading.Event()
        self._specs: dict[str, StoreCollectionSpec] = {}
        self._creating: set[str] = set()
        # Least recently used first. Every change of _specs, _creating and _slots (and of
        # a slot) happens under this condition's lock; Edge calls run outside it.
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_file = self._acquire_dir_lock()
        try:
            self._read_specs()
        except BaseException:
            self.close()
            raise
        if flush_interval_s > 0:
            self._flusher = threading.Thread(
                target=self._flush_loop, name="edge-flusher", daemon=True
            )
            self._flusher.start()

    # ------------------------------------------------------------ lifecycle

    def _acquire_dir_lock(self) -> IO[bytes]:
        handle = (self.root / _LOCK_FILE).open("ab")
        try:
            # flock belongs to the open file, so a second open in this process conflicts too.
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise StoreLocked(_locked_message(self.root)) from exc
        return handle

    def _read_specs(self) -> None:
        """Know every collection; open none (each shard opens on first use)."""
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(_TMP_PREFIX):
                shutil.rmtree(entry)  # an interrupted create or drop; we own the directory
                continue
            spec_file = entry / _SPEC_FILE
            if not spec_file.is_file():
                continue
            spec = StoreCollectionSpec.model_validate_json(spec_file.read_text("utf-8"))
            self._specs[spec.name] = spec

    def _check_open(self) -> None:
        if self._closed:
            raise SieveError("the chunk store is closed", code="store_closed")

    @contextlib.contextmanager
    def _lease(self, name: str) -> Iterator[tuple[edge.EdgeShard, StoreCollectionSpec]]:
        """The collection's shard, opened if need be, not closed before the block ends."""
        slot, spec, opener = self._acquire(name)
        if opener:
            self._open_slot(name, slot, spec)
        assert slot.shard is not None
        try:
            yield slot.shard, spec
        finally:
            self._release(slot)

    def _release(self, slot: _Slot) -> None:
        """A lease ends: wake whoever waits for the shard to be idle (a drop, ``close``),
        then close what is now past ``max_open``."""
        with self._cond:
            slot.users -= 1
            victims = self._pick_victims()
            self._cond.notify_all()
        self._close_victims(victims)

    def _acquire(self, name: str) -> tuple[_Slot, StoreCollectionSpec, bool]:
        with self._cond:
            while True:
                self._check_open()
                spec = self._specs.get(name)
                if spec is None:
                    raise NotFound(f"collection {name!r} does not exist")
                slot = self._slots.get(name)
                if slot is None:
                    slot = self._slots[name] = _Slot(users=1)
                    return slot, spec, True
                if slot.state == "open":
                    slot.users += 1
                    self._slots.move_to_end(name)
                    return slot, spec, False
                self._cond.wait()  # being opened or closed by another thread

    def _open_slot(self, name: str, slot: _Slot, spec: StoreCollectionSpec) -> None:
        try:
            with _edge_errors(self.root, name):
                shard = edge.EdgeShard.load(
                    str(self.root / name / _SHARD_DIR),
                    shard_config(_shard_request(spec, self._search_threads)),
                )
        except BaseException:
            with self._cond:
                del self._slots[name]
                self._cond.notify_all()
            raise
        with self._cond:
            slot.shard, slot.state = shard, "open"
            victims = self._pick_victims()
            self._cond.notify_all()
        self._close_victims(victims)

    def _pick_victims(self) -> list[tuple[str, _Slot]]:
        """Mark idle shards past ``max_open``, least recently used first, for closing."""
        victims: list[tuple[str, _Slot]] = []
        excess = sum(1 for s in self._slots.values() if s.state != "closing") - self._max_open
        for name, slot in self._slots.items():
            if excess <= 0:
                break
            if slot.state == "open" and slot.users == 0:
                slot.state = "closing"
                victims.append((name, slot))
                excess -= 1
        return victims

    def _close_victims(self, victims: list[tuple[str, _Slot]]) -> None:
        for name, slot in victims:
            try:
                # Writes not yet flushed (a flush interval) are flushed first: closing
                # loses nothing. A failed close must not fail the unrelated request that
                # happened to evict it.
                with contextlib.suppress(Exception), _edge_errors(self.root, name):
                    assert slot.shard is not None
                    if slot.unflushed:
                        self._flush_shard(slot.shard)
                    slot.shard.close()
            finally:
                with self._cond:
                    self._slots.pop(name, None)
                    self._cond.notify_all()

    def open_collections(self) -> int:
        """How many shards are open now (for tests and metrics)."""
        with self._cond:
            return sum(1 for s in self._slots.values() if s.state == "open")

    def create_collection(self, spec: StoreCollectionSpec) -> None:
        """Create the shard in a scratch directory, then rename it into place (never half)."""
        with self._cond:
            self._check_open()
            final = self.root / spec.name
            if spec.name in self._specs or spec.name in self._creating or final.exists():
                raise Conflict(f"collection {spec.name!r} already exists")
            self._creating.add(spec.name)
        try:
            self._create_files(spec, final)
            with self._cond:
                self._specs[spec.name] = spec
        finally:
            with self._cond:
                self._creating.discard(spec.name)

    def _create_files(self, spec: StoreCollectionSpec, final: Path) -> None:
        scratch = self.root / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            scratch.mkdir()
            with _edge_errors(self.root, spec.name):
                _create_shard_files(
                    scratch / _SHARD_DIR,
                    _shard_request(spec, self._search_threads),
                    _CREATE_TIMEOUT_S,
                )
            spec_path = scratch / _SPEC_FILE
            spec_path.write_text(spec.model_dump_json(), "utf-8")
            with spec_path.open("rb") as handle:
                os.fsync(handle.fileno())
            scratch.rename(final)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise

    def drop_collection(self, name: str) -> None:
        """Close the shard (once its operations in flight end) and delete its directory."""
        with self._cond:
            while True:
                self._check_open()
                if name not in self._specs:
                    raise NotFound(f"collection {name!r} does not exist")
                slot = self._slots.get(name)
                if slot is None or (slot.state == "open" and slot.users == 0):
                    break
                self._cond.wait()
            del self._specs[name]  # from here on, new operations get NotFound
            if slot is None:
                slot = self._slots[name] = _Slot(state="closing")
            else:
                slot.state = "closing"
        try:
            if slot.shard is not None:
                with _edge_errors(self.root, name):
                    slot.shard.close()
            # Rename first: a crash mid-delete leaves a scratch dir, never half a collection.
            trash = self.root / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
            (self.root / name).rename(trash)
            shutil.rmtree(trash)
        finally:
            with self._cond:
                self._slots.pop(name, None)
                self._cond.notify_all()

    def collection_exists(self, name: str) -> bool:
        """True if the collection exists."""
        with self._cond:
            self._check_open()
            return name in self._specs

    def close(self) -> None:
        """Wait for operations in flight, flush and close every shard and release the
        directory lock (idempotent)."""
        self._stop_flusher.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join()
        with self._cond:
            if self._closed:
                return
            self._closed = True  # new operations fail with store_closed from here on
            while any(s.users or s.state != "open" for s in self._slots.values()):
                self._cond.wait()
            slots, self._slots, self._specs = dict(self._slots), OrderedDict(), {}
            self._cond.notify_all()
        try:
            for name, slot in slots.items():
                if slot.shard is not None:
                    with _edge_errors(self.root, name):
                        self._flush_shard(slot.shard)
                        slot.shard.close()
        finally:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()

    # ------------------------------------------------------------ flushing

    def _flush_shard(self, shard: edge.EdgeShard) -> None:
        shard.flush()
        self.flushes += 1

    def _written(self, name: str, shard: edge.EdgeShard) -> None:
        """After a write: flush now, or sync the write-ahead log and leave the flush to
        the flusher (``flush_interval_s``)."""
        if self._flush_interval_s <= 0:
            self._flush_shard(shard)
            return
        self._sync_wal(name)
        with self._cond:
            self._slots[name].unflushed += 1  # leased by the caller: the slot is there

    def _sync_wal(self, name: str) -> None:
        """Put the shard's write-ahead log on disk: ``fsync`` of each file in it, then of
        the directory (a segment the log just created or renamed).

        Edge's ``update()`` writes the log through a shared memory map and syncs nothing
        (strace: no ``fsync``/``msync`` until ``flush()``, whose first ``msync`` is the
        log's). On Linux ``fsync`` of a file writes back the pages dirtied through a map
        too, and ``os.fsync`` lets other threads run while the disk works.
        """
        wal = self.root / name / _SHARD_DIR / _WAL_DIR
        for _ in range(3):  # the log renames a segment it closes: list again if one moved
            try:
                for entry in sorted(os.scandir(wal), key=lambda e: e.name):
                    if entry.is_file(follow_symlinks=False):
                        fsync_path(entry.path)
                fsync_path(str(wal))
            except FileNotFoundError:
                continue
            self.wal_syncs += 1
            return
        raise UpstreamUnavailable(
            f"collection {name!r}: the embedded store's write-ahead log kept moving"
        )

    def _flush_loop(self) -> None:
        while not self._stop_flusher.wait(self._flush_interval_s):
            with contextlib.suppress(Exception):  # a failed flush is retried next time
                self.flush_written()

    def flush_written(self) -> int:
        """Flush every open shard written since its last flush; how many were flushed.

        Writes that land while a shard is being flushed stay counted for the next pass.
        """
        with self._cond:
            if self._closed:
                return 0
            due = [(n, s) for n, s in self._slots.items() if s.state == "open" and s.unflushed]
            for _, slot in due:
                slot.users += 1  # held like a lease: not closed under the flush
        flushed = 0
        for index, (name, slot) in enumerate(due):
            seen = slot.unflushed
            try:
                assert slot.shard is not None
                with _edge_errors(self.root, name):
                    self._flush_shard(slot.shard)
                flushed += 1
                with self._cond:
                    slot.unflushed -= seen
            except BaseException:
                for _, rest in due[index:]:
                    self._release(rest)
                raise
            self._release(slot)
        return flushed

    # ------------------------------------------------------------ writes

    def upsert(self, name: str, points: Sequence[ChunkPoint]) -> None:
        """Insert or replace points by id, then flush."""
        with self._lease(name) as (shard, spec):
            if not points:
                return
            check_points(spec, points)
            batch = [_edge_point(p) for p in points]
            with _edge_errors(self.root, name):
                shard.update(edge.UpdateOperation.upsert_points(batch))
                self._written(name, shard)

    def delete_document(self, name: str, document_id: str) -> None:
        """Delete every chunk of one document."""
        self.delete_by_filter(name, document_filter(document_id))

    def delete_by_filter(self, name: str, filter: ChunkFilter) -> None:
        """Delete the points matching a non-empty filter."""
        edge_filter = to_edge_filter(filter)
        with self._lease(name) as (shard, _):
            if edge_filter is None:
                raise InvalidInput("refusing to delete by an empty filter (it matches every point)")
            with _edge_errors(self.root, name):
                shard.update(edge.UpdateOperation.delete_points_by_filter(edge_filter))
                self._written(name, shard)

    def optimize(self, name: str) -> None:
        """Build the HNSW index now; blocks and holds the GIL (~40 s at 100k points)."""
        with self._lease(name) as (shard, _), _edge_errors(self.root, name):
            shard.optimize()
            self._flush_shard(shard)

    # ------------------------------------------------------------ reads

    def get(self, name: str, ids: Sequence[str]) -> list[ChunkPoint]:
        """The points with these ids, in the order asked; missing ids are left out."""
        wanted = [canonical_id(i) for i in ids]
        with self._lease(name) as (shard, _), _edge_errors(self.root, name):
            records = shard.retrieve(list(wanted), with_payload=True, with_vector=True)
        by_id = {str(r.id): r for r in records}
        return [_chunk_point(by_id[i]) for i in wanted if i in by_id]

    def count(self, name: str, filter: ChunkFilter | None = None) -> int:
        """Exact number of points matching ``filter``."""
        request = edge.CountRequest(exact=True, filter=to_edge_filter(filter))
        with self._lease(name) as (shard, _), _edge_errors(self.root, name):
            return shard.count(request)

    def list_document_chunks(self, name: str, document_id: str) -> list[StoredChunk]:
        """Every chunk of one document, ordered by ``chunk_no``."""
        doc = to_edge_filter(document_filter(document_id))
        chunks: list[StoredChunk] = []
        offset: Any = None
        with self._lease(name) as (shard, _):
            while True:
                request = edge.ScrollRequest(
                    offset=offset, limit=_SCROLL_PAGE, filter=doc, with_payload=True
                )
                with _edge_errors(self.root, name):
                    records, offset = shard.scroll(request)
                chunks.extend(
                    StoredChunk(id=str(r.id), payload=payload_from_stored(r.payload))
                    for r in records
                )
                if offset is None:
                    break
        chunks.sort(key=lambda c: c.payload.chunk_no)
        return chunks

    def document_points(self, name: str, document_id: str) -> list[ChunkPoint]:
        """Every chunk of one document with its vectors, ordered by ``chunk_no``."""
        doc = to_edge_filter(document_filter(document_id))
        points: list[ChunkPoint] = []
        offset: Any = None
        with self._lease(name) as (shard, _):
            while True:
                request = edge.ScrollRequest(
                    offset=offset,
                    limit=_SCROLL_PAGE,
                    filter=doc,
                    with_payload=True,
                    with_vector=True,
                )
                with _edge_errors(self.root, name):
                    records, offset = shard.scroll(request)
                points.extend(_chunk_point(r) for r in records)
                if offset is None:
                    break
        points.sort(key=lambda p: p.payload.chunk_no)
        return points

    def late_tokens(self, name: str, *, sample: int = 64) -> float | None:
        """Mean token vectors per chunk over up to ``sample`` points (None: none stored)."""
        request = edge.ScrollRequest(limit=sample, with_payload=False, with_vector=[LATE_VECTOR])
        with self._lease(name) as (shard, spec):
            if spec.late_size is None:
                return None
            with _edge_errors(self.root, name):
                records, _ = shard.scroll(request)
        return late_mean_tokens(
            [r.vector.get(LATE_VECTOR) for r in records if isinstance(r.vector, dict)]
        )

    def query(self, name: str, query: HybridQuery) -> list[ScoredHit]:
        """Run the dense and sparse legs as one batch, then fuse them client-side.

        With ``query.late``, the same batch also rescores the union of the legs by MaxSim
        over the stored token vectors (a request whose prefetches are the legs), and that
        rank is fused with the recall rank (``fuse_late``).
        """
        with self._lease(name) as (shard, spec):
            check_query(spec, query)
            with _edge_errors(self.root, name):
                results = shard.query_batch(edge.QueryBatchRequest(self._requests(query)))
            legs = len(results) - (query.late is not None)
            rows = self._recall_rows(query, results[:legs])
            with _edge_errors(self.root, name):
                ids = [row[0] for row in rows]
                records = shard.retrieve(ids, with_payload=True, with_vector=False) if ids else []
        hits = _with_payloads(rows, records)
        if query.late is None:
            return hits
        late = {str(point.id): point.score for point in results[-1]}
        return fuse_late(hits, late, query.late_fusion)

    def _requests(self, query: HybridQuery) -> list[edge.QueryRequest]:
        """The legs' requests, then the late-interaction one when the query has it."""
        edge_filter = to_edge_filter(query.filter)
        legs: list[edge.QueryRequest] = []
        if query.mode is not QueryMode.SPARSE and query.dense is not None:
            legs.append(
                self._leg(edge.Query.Nearest(query.dense, using=DENSE_VECTOR), query, edge_filter)
            )
        if query.mode is not QueryMode.DENSE and query.sparse is not None:
            sparse = edge.SparseVector(query.sparse.indices, query.sparse.values)
            legs.append(
                self._leg(edge.Query.Nearest(sparse, using=SPARSE_VECTOR), query, edge_filter)
            )
        requests = list(legs)
        if query.late is not None:
            requests.append(_late_request(legs, query, edge_filter))
        return requests

    @staticmethod
    def _recall_rows(
        query: HybridQuery, results: Sequence[Sequence[edge.ScoredPoint]]
    ) -> list[_Row]:
        try:
            if query.mode is QueryMode.DENSE:
                return _one_leg_rows(results[0], "dense", query.limit)
            if query.mode is QueryMode.SPARSE:
                return _one_leg_rows(results[-1], "sparse", query.limit)
            return _hybrid_rows(results[0], results[-1], query)
        except AttributeError:  # a point id that is not a UUID: not written by this store
            return _generic_rows(query, results)

    @staticmethod
    def _leg(
        scoring: edge.Query, query: HybridQuery, edge_filter: edge.Filter | None
    ) -> edge.QueryRequest:
        return edge.QueryRequest(
            limit=query.leg_limit,
            query=scoring,
            filter=edge_filter,
            with_payload=False,  # read for the fused hits only (the fast path, above)
            with_vector=False,
        )


def _late_request(
    legs: Sequence[edge.QueryRequest], query: HybridQuery, edge_filter: edge.Filter | None
) -> edge.QueryRequest:
    """MaxSim over every candidate of the legs: the fused top ``limit`` is inside their union.

    Not Qdrant's own RRF prefetch: its weighted formula (1/(r/w + k - 1), integer k) is not
    Sieve's (w/(k + r)), so it would rescore a different candidate set than the recall
    order the hits report.
    """
    assert query.late is not None
    prefetches = [
        edge.Prefetch(limit=leg.limit, query=leg.query, filter=edge_filter) for leg in legs
    ]
    return edge.QueryRequest(
        limit=sum(leg.limit for leg in legs),
        query=edge.Query.Nearest(late_rows(query.late), using=LATE_VECTOR),
        prefetches=prefetches,
        filter=edge_filter,
        with_payload=False,
        with_vector=False,
    )
