"""What a store write costs everyone else in the store-owning process (the API, embedded).

    .venv/bin/python -m bench.store_writes [--points 5000] [--seconds 10] [--intervals 0,5] [--json]

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
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Callable
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


def window(
    store: EdgeChunkStore, data: Data, seconds: float, *, write: bool
) -> dict[str, list[float]]:
    """Ticker lateness, query and (with ``write``) write latencies (ms) over one window."""
    out: dict[str, list[float]] = {"late": [], "query": [], "write": []}
    stop = threading.Event()
    queries = iter(range(10**9))
    writes = iter(range(10**9))
    points: list[ChunkPoint] = data.points

    def tick() -> None:
        start = time.perf_counter()
        time.sleep(TICK_S)
        out["late"].append((time.perf_counter() - start - TICK_S) * 1000)

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

    threads = [_until(stop, tick), _until(stop, query)]
    if write:
        threads.append(_until(stop, upsert))
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return out


def run(points: int, seconds: float, intervals: list[float]) -> dict[str, Any]:
    """The baseline and each flush interval, each on a store of its own, same data."""
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
        "points": points,
        "seconds": seconds,
        "code": code_state(),
        "machine": machine_note(),
    }


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
    return note + "\n" + markdown_table(header, table)


def main() -> None:
    """Run and print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--intervals", default=f"0,{DEFAULT_FLUSH_INTERVAL_S:g}")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = run(args.points, args.seconds, [float(x) for x in args.intervals.split(",")])
    print(json.dumps(out) if args.json else render(out))


if __name__ == "__main__":
    main()
