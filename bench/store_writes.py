"""What a store write costs everyone else in the store-owning process (the API, embedded).

    .venv/bin/python -m bench.store_writes [--points 5000] [--seconds 10] [--intervals 0,5]
                                           [--reps 20] [--json]

One process, one ``EdgeChunkStore`` holding ``--points`` synthetic chunks (384-d vectors,
BM25 text, ``bench.store``'s data) in a collection that is only read, and a second one that
is written. For ``--seconds``, three threads run at once, as they do in the API:

- a *ticker* sleeps 0.5 ms and records how late it woke (how long another thread held the
  interpreter lock: the event loop's view of a stall);
- a *reader* runs hybrid queries (50 candidates) against the read collection back to back;
- a *writer* upserts 8 points (one document's chunks) to the other collection every 50 ms.

Once per ``--intervals`` value, in the same run: ``flush_interval_s=0`` is Edge's
``flush()`` after every write (the old default), above 0 each write's write-ahead log is
fsynced and the written collection flushed that often (5 s, the default).
The table gives the writes' latency, the ticker's lateness, the queries' latency, and the
ratio of each to the no-writes baseline measured first, in the same run.

A second table takes a collection's operations one at a time (``lifecycle``): each one's
latency and the longest the ticker was kept waiting meanwhile, against an idle floor.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.harness import code_state, machine_note, markdown_table, pct
from bench.store import Data, make_data
from core.types import ChunkPoint, StoreCollectionSpec
from retriever.edge_store import DEFAULT_FLUSH_INTERVAL_S, EdgeChunkStore

DIM = 384
TICK_S = 0.0005
WRITE_EVERY_S = 0.05
DOC_CHUNKS = 8


def _until(stop: threading.Event, body: Callable[[], None]) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            body()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _ticker(late: list[float]) -> Callable[[], None]:
    """One tick: sleep ``TICK_S``, record how late it woke (ms) in ``late``."""

    def tick() -> None:
        start = time.perf_counter()
        time.sleep(TICK_S)
        late.append((time.perf_counter() - start - TICK_S) * 1000)

    return tick


def window(
    store: EdgeChunkStore, data: Data, seconds: float, *, write: bool
) -> dict[str, list[float]]:
    """Ticker lateness, query and (with ``write``) write latencies (ms) over one window."""
    out: dict[str, list[float]] = {"late": [], "query": [], "write": []}
    stop = threading.Event()
    queries = iter(range(10**9))
    writes = iter(range(10**9))
    points: list[ChunkPoint] = data.points

    def query() -> None:
        q = data.queries[next(queries) % len(data.queries)]
        start = time.perf_counter()
        store.query("read", q)
        out["query"].append((time.perf_counter() - start) * 1000)

    def upsert() -> None:
        n = next(writes)
        batch = points[(n * DOC_CHUNKS) % len(points) :][:DOC_CHUNKS]
        start = time.perf_counter()
        store.upsert("written", batch)
        out["write"].append((time.perf_counter() - start) * 1000)
        time.sleep(WRITE_EVERY_S)

    threads = [_until(stop, _ticker(out["late"])), _until(stop, query)]
    if write:
        threads.append(_until(stop, upsert))
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return out


def run(points: int, seconds: float, intervals: list[float], reps: int = 20) -> dict[str, Any]:
    """The baseline and each flush interval, each on a store of its own, same data; then
    ``reps`` rounds of a collection's life (``lifecycle``)."""
    data = make_data(points, 200, seed=7)
    rows: dict[str, dict[str, list[float]]] = {}
    for interval in intervals:
        label = f"{interval:g}" + (" (default)" if interval == DEFAULT_FLUSH_INTERVAL_S else "")
        with tempfile.TemporaryDirectory(prefix="sieve-bench-writes-") as tmp:
            store = EdgeChunkStore(Path(tmp), search_threads=1, flush_interval_s=interval)
            try:
                for name in ("read", "written"):
                    store.create_collection(StoreCollectionSpec(name=name, dense_size=DIM))
                for start in range(0, len(data.points), 512):
                    store.upsert("read", data.points[start : start + 512])
                store.upsert("written", data.points[:DOC_CHUNKS])
                if "baseline" not in rows:
                    rows["baseline"] = window(store, data, seconds, write=False)
                rows[label] = window(store, data, seconds, write=True)
            finally:
                store.close()
    return {
        "rows": rows,
        "lifecycle": lifecycle(data, reps) if reps else {},
        "reps": reps,
        "points": points,
        "seconds": seconds,
        "code": code_state(),
        "machine": machine_note(),
    }


LIFECYCLE_OPS = ("idle", "create", "first write", "write", "query", "flush", "drop")


def lifecycle(data: Data, reps: int) -> dict[str, dict[str, list[float]]]:
    """Per collection operation: its latency and how late the ticker woke during it (the
    longest interpreter-lock hold another thread saw), ``reps`` times each, one at a time.

    A collection's life as one tenant churning collections drives it: create (Edge's files
    are made in a child process), the first write (which opens the shard in this one),
    another write, a query, the background flush of what was written, the drop. "idle"
    is the floor: the ticker over a sleep of the same length, nothing else running.
    """
    late: list[float] = []
    out: dict[str, dict[str, list[float]]] = {op: {"op": [], "late": []} for op in LIFECYCLE_OPS}
    stop = threading.Event()

    def timed(op: str, call: Callable[[], object]) -> None:
        time.sleep(0.01)  # the last operation's tail is over
        late.clear()
        start = time.perf_counter()
        call()
        out[op]["op"].append((time.perf_counter() - start) * 1000)
        time.sleep(0.002)  # the ticker wakes once more after the operation
        out[op]["late"].append(max(late, default=0.0))

    batch = data.points[:DOC_CHUNKS]
    with tempfile.TemporaryDirectory(prefix="sieve-bench-lifecycle-") as tmp:
        # The API's own settings: 1 search thread, the default flush interval.
        store = EdgeChunkStore(Path(tmp), search_threads=1)
        ticker = _until(stop, _ticker(late))
        try:
            for n in range(reps):
                name = f"churn{n}"
                spec = StoreCollectionSpec(name=name, dense_size=DIM)
                timed("idle", partial(time.sleep, 0.03))
                timed("create", partial(store.create_collection, spec))
                timed("first write", partial(store.upsert, name, batch))
                timed("write", partial(store.upsert, name, batch))
                timed("query", partial(store.query, name, data.queries[n % len(data.queries)]))
                timed("flush", store.flush_written)
                timed("drop", partial(store.drop_collection, name))
        finally:
            stop.set()
            ticker.join()
            store.close()
    return out


def _ms(samples: list[float], q: int) -> str:
    return f"{pct(samples, q):.2f}" if samples else "-"


def render(out: dict[str, Any]) -> str:
    """One row per mode; ratios against the baseline window (no writes)."""
    base = out["rows"]["baseline"]
    table = []
    for label, r in out["rows"].items():
        ratio = (
            f"{pct(r['query'], 50) / pct(base['query'], 50):.2f}x / "
            f"{pct(r['query'], 99) / pct(base['query'], 99):.2f}x"
        )
        table.append(
            [
                label,
                f"{len(r['write'])}",
                f"{_ms(r['write'], 50)} / {_ms(r['write'], 99)}",
                f"{_ms(r['late'], 99)} / {max(r['late']):.1f}",
                f"{_ms(r['query'], 50)} / {_ms(r['query'], 99)}",
                ratio,
            ]
        )
    header = ["SIEVE_QDRANT_FLUSH_INTERVAL_S", "writes", "write p50 / p99 ms"]
    header += ["ticker late p99 / max ms", "query p50 / p99 ms", "query vs no writes"]
    note = (
        f"{out['machine']}; {out['code']}; {out['points']} points read, "
        f"{out['seconds']:.0f} s windows\n"
    )
    text = note + "\n" + markdown_table(header, table)
    if out.get("lifecycle"):
        rows = [
            [op, _ms(r["op"], 50), _ms(r["late"], 50), f"{max(r['late']):.1f}"]
            for op, r in out["lifecycle"].items()
        ]
        head = ["collection operation", "op p50 ms", "ticker late p50 ms", "late max ms"]
        text += f"\n\nOne at a time, {out['reps']} of each:\n\n" + markdown_table(head, rows)
    return text


def main() -> None:
    """Run and print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--intervals", default=f"0,{DEFAULT_FLUSH_INTERVAL_S:g}")
    parser.add_argument("--reps", type=int, default=20, help="rounds of a collection's life")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    intervals = [float(x) for x in args.intervals.split(",")]
    out = run(args.points, args.seconds, intervals, args.reps)
    print(json.dumps(out) if args.json else render(out))


if __name__ == "__main__":
    main()
