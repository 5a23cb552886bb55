"""Edge chunk store benchmark: the ``EdgeChunkStore`` adapter against raw ``qdrant_edge`` calls.

Same synthetic data, same process, same run: clustered 384-d vectors (seeded numpy) with BM25
text drawn from a Zipf vocabulary. For each size: upsert points/s, dense and hybrid query
p50/p95 on plain segments and after the HNSW build (optimize), and process RSS. The raw side
makes the same engine calls (one query, or one query_batch of both legs) and reads each
hit's id, score and payload; the adapter additionally converts, fuses and builds ScoredHits.

    .venv/bin/python -m bench.store --sizes 10000,100000 --queries 200
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import qdrant_edge as edge

from core.ids import content_sha256, point_id
from core.types import ChunkPayload, ChunkPoint, HybridQuery, QueryMode, StoreCollectionSpec
from retriever.bm25 import Bm25Encoder, mean_token_length
from retriever.edge_shard_files import create_shard, shard_config
from retriever.edge_store import EdgeChunkStore, _shard_request
from retriever.layout import DENSE_VECTOR, SPARSE_VECTOR

DIM = 384
CLUSTERS = 64
VOCAB = 20_000
BATCH = 512
LIMIT = 50
NAME = "bench"


@dataclass
class Data:
    """One size's points in both shapes, and the queries."""

    points: list[ChunkPoint]
    raw: list[tuple[str, list[float], list[int], list[float], dict[str, Any]]]
    query_dense: list[list[float]]
    query_sparse: list[tuple[list[int], list[float]]]
    queries: list[HybridQuery]


def _texts(rng: np.random.Generator, count: int, low: int, high: int) -> list[str]:
    lengths = rng.integers(low, high, size=count)
    words = np.minimum(rng.zipf(1.2, size=int(lengths.sum())), VOCAB)
    texts, at = [], 0
    for length in lengths:
        texts.append(" ".join(f"w{w}" for w in words[at : at + length]))
        at += int(length)
    return texts


def _clustered(rng: np.random.Generator, count: int, centers: np.ndarray) -> np.ndarray:
    labels = rng.integers(0, len(centers), size=count)
    vectors = centers[labels] + 0.35 * rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors, dtype=np.float32)


def make_data(size: int, queries: int, seed: int) -> Data:
    """Seeded synthetic corpus and queries."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((CLUSTERS, DIM)).astype(np.float32)
    vectors = _clustered(rng, size, centers)
    texts = _texts(rng, size, 40, 160)
    encoder = Bm25Encoder(avg_len=mean_token_length(texts[:2000]))
    sparse = encoder.embed_documents(texts)
    points, raw = [], []
    for i, (vector, text, vec) in enumerate(zip(vectors.tolist(), texts, sparse, strict=True)):
        doc, chunk_no = f"doc{i // 8}", i % 8
        payload = ChunkPayload(
            document_id=doc,
            content_hash=content_sha256(text),
            chunk_no=chunk_no,
            text=text,
            source=f"{doc}.txt",
            page=chunk_no // 2,
            metadata={"lang": "en", "n": i},
        )
        point = ChunkPoint(
            id=point_id(NAME, doc, chunk_no), dense=vector, sparse=vec, payload=payload
        )
        points.append(point)
        raw.append((point.id, vector, vec.indices, vec.values, payload.model_dump(mode="json")))
    q_vectors = _clustered(rng, queries, centers).tolist()
    q_sparse = [encoder.embed_query(t) for t in _texts(rng, queries, 3, 8)]
    hybrid = [
        HybridQuery(dense=d, sparse=s, mode=QueryMode.HYBRID, limit=LIMIT)
        for d, s in zip(q_vectors, q_sparse, strict=True)
    ]
    return Data(points, raw, q_vectors, [(s.indices, s.values) for s in q_sparse], hybrid)


def _raw_shard(path: Path, spec: StoreCollectionSpec) -> edge.EdgeShard:
    request = _shard_request(spec, None)
    create_shard(str(path), request)  # the store's own layout, indexes included
    return edge.EdgeShard.load(str(path), shard_config(request))


def _raw_upsert(shard: edge.EdgeShard, rows: list[Any]) -> None:
    batch = [
        edge.Point(pid, {DENSE_VECTOR: dense, SPARSE_VECTOR: edge.SparseVector(idx, val)}, payload)
        for pid, dense, idx, val, payload in rows
    ]
    shard.update(edge.UpdateOperation.upsert_points(batch))
    shard.flush()


def _raw_leg(query: Any) -> edge.QueryRequest:
    return edge.QueryRequest(limit=LIMIT, query=query, with_payload=True, with_vector=False)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _pct(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] * 1000


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


Row = tuple[str, float, float, bool]  # metric, adapter, raw, higher is better


def _read(points: list[edge.ScoredPoint]) -> None:
    # Any caller reads each hit's id, score and payload; Edge converts them on access.
    for point in points:
        _ = (point.id, point.score, point.payload)


def _raw_dense(shard: edge.EdgeShard, dense: list[float]) -> None:
    _read(shard.query(_raw_leg(edge.Query.Nearest(dense, using=DENSE_VECTOR))))


def _raw_hybrid(
    shard: edge.EdgeShard, dense: list[float], sparse: tuple[list[int], list[float]]
) -> None:
    legs = [
        _raw_leg(edge.Query.Nearest(dense, using=DENSE_VECTOR)),
        _raw_leg(edge.Query.Nearest(edge.SparseVector(*sparse), using=SPARSE_VECTOR)),
    ]
    for result in shard.query_batch(edge.QueryBatchRequest(legs)):
        _read(result)


def _queries(store: EdgeChunkStore, shard: edge.EdgeShard, data: Data, phase: str) -> list[Row]:
    dense_a, dense_r, hyb_a, hyb_r = [], [], [], []
    for i, query in enumerate(data.queries):  # interleaved, so load drifts hit both alike
        dense_query = query.model_copy(update={"mode": QueryMode.DENSE})
        dense_a.append(_timed(partial(store.query, NAME, dense_query)))
        dense_r.append(_timed(partial(_raw_dense, shard, data.query_dense[i])))
        hyb_a.append(_timed(partial(store.query, NAME, query)))
        hyb_r.append(_timed(partial(_raw_hybrid, shard, data.query_dense[i], data.query_sparse[i])))
    warm = len(data.queries) // 10  # the first queries fault pages in
    rows: list[Row] = []
    for label, adapter, raw in (("dense", dense_a, dense_r), ("hybrid", hyb_a, hyb_r)):
        a, r = adapter[warm:], raw[warm:]
        rows.append((f"{label} p50 ms ({phase})", _pct(a, 50), _pct(r, 50), False))
        rows.append((f"{label} p95 ms ({phase})", _pct(a, 95), _pct(r, 95), False))
    return rows


def run_size(size: int, queries: int, seed: int) -> list[Row]:
    """Benchmark one corpus size; returns the table rows."""
    data = make_data(size, queries, seed)
    # The generated corpus is millions of long-lived Python objects that belong to the
    # benchmark, not to either store: keep the cyclic GC from rescanning them mid-query.
    gc.collect()
    gc.freeze()
    spec = StoreCollectionSpec(name=NAME, dense_size=DIM)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="sieve-bench-") as tmp:
        rss0 = _rss_mb()
        store = EdgeChunkStore(Path(tmp) / "adapter")
        store.create_collection(spec)
        shard = _raw_shard(Path(tmp) / "raw", spec)
        try:
            t_a = t_r = 0.0
            for at in range(0, size, BATCH):
                t_a += _timed(partial(store.upsert, NAME, data.points[at : at + BATCH]))
                t_r += _timed(partial(_raw_upsert, shard, data.raw[at : at + BATCH]))
            rows.append(("upsert points/s", size / t_a, size / t_r, True))
            rows.extend(_queries(store, shard, data, "plain"))
            opt_a = _timed(partial(store.optimize, NAME))
            opt_r = _timed(shard.optimize)
            rows.append(("optimize s", opt_a, opt_r, False))
            rows.extend(_queries(store, shard, data, "hnsw"))
            rss = _rss_mb()
            rows.append(("process RSS MB (both stores)", rss, rss0, False))
        finally:
            store.close()
            shard.close()
    del data
    gc.unfreeze()
    gc.collect()
    return rows


def render(size: int, rows: list[Row]) -> str:
    """Markdown table for one size."""
    lines = [
        f"\n### {size:,} points ({DIM}-d, limit {LIMIT})\n",
        "| metric | adapter | raw | overhead |",
        "|---|---:|---:|---:|",
    ]
    for metric, adapter, raw, higher_better in rows:
        if metric.startswith("process RSS"):
            lines.append(f"| {metric} | {adapter:,.0f} | (before: {raw:,.0f}) | |")
            continue
        overhead = (raw / adapter - 1) if higher_better else (adapter / raw - 1)
        lines.append(f"| {metric} | {adapter:,.2f} | {raw:,.2f} | {overhead:+.1%} |")
    return "\n".join(lines)


def main() -> None:
    """Parse options, run every size, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000", help="comma-separated corpus sizes")
    parser.add_argument("--queries", type=int, default=200, help="queries per phase")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    print("overhead = adapter cost / raw cost - 1 (target <= +15%)")
    for size in (int(s) for s in args.sizes.split(",")):
        start = time.perf_counter()
        rows = run_size(size, args.queries, args.seed)
        print(render(size, rows))
        print(f"\n({time.perf_counter() - start:.0f} s for this size)")


if __name__ == "__main__":
    main()
