"""Query benchmark: ``POST /v1/collections/{name}/query`` on the embedded stack, 10k/100k chunks.

    .venv/bin/python -m bench.query [--sizes 10000,100000] [--queries 100] [--json]
    .venv/bin/python -m bench.query --policies --api-url URL --collection C --dataset DIR

``--policies`` compares the final policies on a real, already ingested BEIR collection
(bench/policies.py: latency at 1 and 16 clients, queries/s and nDCG@10, each as a ratio to
the cross-encoder over 50 measured in the same run); the rest of this text is the default
mode, the store-size benchmark.

Per size, a builder (this process) writes the collection straight into the Edge store the
API will own, before the API starts: chunk texts are the pipeline's chunks of SciFact
abstracts, cycled with variations (sentences rotated, one dropped) up to the size; dense
vectors are clustered random unit vectors (embedding 100k chunks on 2 cores takes too long),
BM25 vectors come from ``Bm25Encoder`` over the texts with their real mean length. With
``--index hnsw`` (default) the builder runs ``optimize()`` before the API opens the store;
``--index plain`` queries plain segments. The collection is registered in Redis
(tenant ``default``, open mode), then the hub and the API start as ``sieve up`` starts them
(no ingest worker: nothing to ingest).

Queries (SciFact's test queries, cycled) use the API defaults: hybrid, rerank on with the
local hub, top_k 50. Phase 1: one client. Phase 2: 16 concurrent clients. Each phase is
bounded by a count and a time budget. Reported: p50/p95 of each stage from ``timings_ms``,
client latency, service overhead = total - (embed + recall + rerank), the rerank share,
errors and rerank statuses.

Baseline, same run, one client, interleaved with phase 1: the same query embedded and its
exact 50 recall candidates (fetched beforehand with rerank off, top_n 50) reranked by direct
calls to the hub, i.e. what the two model calls cost without Sieve.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.harness import SCIFACT_DIR, BenchStack, code_state, markdown_table, pct
from core.ids import content_sha256, point_id
from core.settings import IngestSettings, ModelSettings, QuerySettings
from core.types import ChunkPayload, ChunkPoint, StoreCollectionSpec
from indexing.records import CollectionRecord
from indexing.state_store import StateStore
from ingest.chunker import ChunkerConfig, chunk_document
from ingest.documents import ExtractedDocument
from ingest.limits import IngestLimits
from ingest.records import record_to_document
from ingest.tokenizer import load_bge_small_tokenizer
from retriever.bm25 import Bm25Encoder, mean_token_length
from retriever.edge_store import EdgeChunkStore

DIM = 384
CLUSTERS = 64
BATCH = 512
TENANT = "default"  # open mode: no API keys configured
NAME = "bench"
OVERHEAD_TARGET_MS = 5.0
STAGES = ("embed", "recall", "rerank", "total")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class BaseChunk:
    """One real chunk of a SciFact abstract."""

    doc_id: str
    chunk_no: int
    title: str | None
    text: str


def scifact_chunks() -> list[BaseChunk]:
    """Every SciFact abstract, chunked with the pipeline's tokenizer and settings."""
    settings = IngestSettings()
    config = ChunkerConfig(
        target_tokens=settings.chunk_tokens, overlap_tokens=settings.chunk_overlap
    )
    tokenizer = load_bge_small_tokenizer()
    out: list[BaseChunk] = []
    with (SCIFACT_DIR / "corpus.jsonl").open("rb") as fh:
        for n, line in enumerate(fh):
            if not line.strip():
                continue
            doc = record_to_document(json.loads(line), f"jsonl:{n + 1}", IngestLimits())
            if not isinstance(doc, ExtractedDocument):
                continue
            doc_id = doc.document_id or str(n)
            out.extend(
                BaseChunk(doc_id, c.chunk_no, c.section or c.title or doc.title, c.text)
                for c in chunk_document(doc, tokenizer, config)
            )
    return out


def _variant(text: str, v: int) -> str:
    """Copy ``v`` of a chunk: sentences rotated by ``v``, one dropped (v = 0 is the original)."""
    if v == 0:
        return text
    sentences = _SENTENCE.split(text)
    if len(sentences) < 3:
        return f"{text} (variant {v})"
    drop = v % len(sentences)
    kept = sentences[:drop] + sentences[drop + 1 :]
    shift = v % len(kept)
    return " ".join(kept[shift:] + kept[:shift])


@dataclass
class Built:
    """What the builder wrote."""

    size: int
    avg_len: float
    mean_chars: float
    build_s: float
    optimize_s: float | None


def build_collection(
    root: Path, base: list[BaseChunk], size: int, *, optimize: bool, seed: int
) -> Built:
    """Write ``size`` chunks into the Edge store under ``root`` (the API's store directory)."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(size):
        b, v = base[i % len(base)], i // len(base)
        rows.append((b, f"{b.doc_id}~{v}" if v else b.doc_id, _variant(b.text, v)))
    texts = [t for _, _, t in rows]
    avg_len = mean_token_length(texts[:5000])
    sparse = Bm25Encoder(avg_len=avg_len).embed_documents(texts)
    centers = rng.standard_normal((CLUSTERS, DIM)).astype(np.float32)
    store_name = f"{TENANT}__{NAME}"
    store = EdgeChunkStore(root)
    optimize_s = None
    try:
        store.create_collection(StoreCollectionSpec(name=store_name, dense_size=DIM, sparse=True))
        for at in range(0, size, BATCH):
            part = rows[at : at + BATCH]
            labels = rng.integers(0, CLUSTERS, size=len(part))
            vecs = centers[labels] + 0.35 * rng.standard_normal((len(part), DIM)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            points = [
                ChunkPoint(
                    id=point_id(store_name, doc_id, b.chunk_no),
                    dense=vec,
                    sparse=sparse[at + j],
                    payload=ChunkPayload(
                        document_id=doc_id,
                        content_hash=content_sha256(text),
                        chunk_no=b.chunk_no,
                        text=text,
                        title=b.title,
                        source=f"{doc_id}.json",
                        char_end=len(text),
                    ),
                )
                for j, ((b, doc_id, text), vec) in enumerate(zip(part, vecs.tolist(), strict=True))
            ]
            store.upsert(store_name, points)
        if optimize:
            t = time.perf_counter()
            store.optimize(store_name)
            optimize_s = time.perf_counter() - t
    finally:
        store.close()
    return Built(
        size=size,
        avg_len=avg_len,
        mean_chars=statistics.mean(len(t) for t in texts),
        build_s=time.perf_counter() - start,
        optimize_s=optimize_s,
    )


def register(redis_url: str, avg_len: float) -> None:
    """Register the collection in the API's state, as ``POST /v1/collections`` would."""
    state = StateStore.from_url(redis_url)
    try:
        state.create_collection(
            CollectionRecord(
                tenant=TENANT,
                name=NAME,
                embedding_model=ModelSettings().embedding_model,
                dimension=DIM,
                bm25_avg_len=avg_len,
            )
        )
    finally:
        state.close()


def load_queries() -> list[str]:
    """SciFact's queries, in file order."""
    with (SCIFACT_DIR / "queries.jsonl").open() as fh:
        return [json.loads(line)["text"] for line in fh if line.strip()]


@dataclass
class Sample:
    """One query as the client saw it."""

    client_ms: float
    timings: dict[str, float] | None = None
    rerank_status: str | None = None
    error: str | None = None


@dataclass
class Phase:
    """One phase's samples."""

    clients: int
    asked: int
    seconds: float = 0.0
    samples: list[Sample] = field(default_factory=list)

    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.timings is not None]


def query_once(client: httpx.Client, text: str, **extra: Any) -> tuple[Sample, Any]:
    """One API query; never raises (an error is a sample)."""
    start = time.perf_counter()
    try:
        resp = client.post(f"/v1/collections/{NAME}/query", json={"query": text, **extra})
    except httpx.HTTPError as exc:
        return Sample((time.perf_counter() - start) * 1000, error=type(exc).__name__), None
    ms = (time.perf_counter() - start) * 1000
    if resp.status_code != 200:
        return Sample(ms, error=f"HTTP {resp.status_code}"), None
    body = resp.json()
    return Sample(ms, body["timings_ms"], body["rerank"]["status"]), body


def _rerank_text(hit: dict[str, Any]) -> str:
    # As the API builds a rerank document (query.rerank_text).
    title, text = hit["title"], hit["text"]
    return f"{title}\n{text}" if title and title not in text[: len(title) + 8] else text


@dataclass
class Direct:
    """The baseline: the hub's embed and rerank calls for a query, made directly."""

    embed_ms: list[float] = field(default_factory=list)
    rerank_ms: list[float] = field(default_factory=list)

    def sums(self) -> list[float]:
        return [a + b for a, b in zip(self.embed_ms, self.rerank_ms, strict=True)]


def _timed_post(client: httpx.Client, path: str, body: dict[str, Any]) -> float:
    start = time.perf_counter()
    client.post(path, json=body).raise_for_status()
    return (time.perf_counter() - start) * 1000


def phase_one(
    api: httpx.Client, hub: httpx.Client, queries: list[str], count: int, budget_s: float
) -> tuple[Phase, Direct]:
    """One client: each query through the API, then its baseline straight to the hub."""
    models, prefixes = ModelSettings(), QuerySettings().query_prefixes
    prefix = prefixes.get(models.embedding_model, "")
    phase, direct = Phase(clients=1, asked=count), Direct()
    deadline = time.monotonic() + budget_s
    start = time.perf_counter()
    for i in range(count):
        if time.monotonic() > deadline:
            break
        text = queries[i % len(queries)]
        sample, _ = query_once(api, text)
        phase.samples.append(sample)
        _, cands = query_once(api, text, rerank=False, top_n=50)  # untimed: the 50 candidates
        if cands is None:
            continue
        docs = [_rerank_text(h) for h in cands["results"]]
        direct.embed_ms.append(
            _timed_post(
                hub,
                "/v1/embeddings",
                {"model": models.embedding_model, "input": [prefix + text]},
            )
        )
        direct.rerank_ms.append(
            _timed_post(
                hub,
                "/v1/rerank",
                {
                    "model": models.rerank_model,
                    "query": text,
                    "documents": docs,
                    "return_documents": False,
                },
            )
        )
    phase.seconds = time.perf_counter() - start
    return phase, direct


def phase_concurrent(
    make_client: Callable[[], httpx.Client],
    queries: list[str],
    clients: int,
    count: int,
    budget_s: float,
    offset: int,
) -> Phase:
    """``clients`` threads share ``count`` queries; none starts a query after the budget."""
    phase = Phase(clients=clients, asked=count)
    lock = threading.Lock()
    next_i = [0]
    deadline = time.monotonic() + budget_s

    def worker() -> None:
        with make_client() as client:
            while time.monotonic() < deadline:
                with lock:
                    i = next_i[0]
                    if i >= count:
                        return
                    next_i[0] += 1
                sample, _ = query_once(client, queries[(offset + i) % len(queries)])
                with lock:
                    phase.samples.append(sample)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    phase.seconds = time.perf_counter() - start
    return phase


def summarize(phase: Phase) -> dict[str, Any]:
    """Percentiles per stage, client latency, overhead, rerank share, errors."""
    ok = phase.ok()
    out: dict[str, Any] = {
        "clients": phase.clients,
        "asked": phase.asked,
        "completed": len(phase.samples),
        "ok": len(ok),
        "seconds": phase.seconds,
        "queries_per_s": len(ok) / phase.seconds if phase.seconds else 0.0,
        "errors": {},
        "rerank_status": {},
    }
    for s in phase.samples:
        if s.error:
            out["errors"][s.error] = out["errors"].get(s.error, 0) + 1
        elif s.rerank_status:
            out["rerank_status"][s.rerank_status] = out["rerank_status"].get(s.rerank_status, 0) + 1
    if not ok:
        return out
    series: dict[str, list[float]] = {k: [] for k in (*STAGES, "overhead", "client", "outside")}
    shares = []
    for s in ok:
        t = s.timings or {}
        for k in STAGES:
            series[k].append(t[k])
        series["overhead"].append(t["total"] - (t["embed"] + t["recall"] + t["rerank"]))
        series["client"].append(s.client_ms)
        series["outside"].append(s.client_ms - t["total"])
        shares.append(t["rerank"] / t["total"] if t["total"] else 0.0)
    out["ms"] = {k: {"p50": pct(v, 50), "p95": pct(v, 95)} for k, v in series.items()}
    out["rerank_share"] = {
        "p50": pct(shares, 50),
        "of_summed_time": sum(series["rerank"]) / sum(series["total"]),
    }
    return out


def run_size(
    base: list[BaseChunk], queries: list[str], size: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Build, start, query at 1 and at N clients, stop."""
    with tempfile.TemporaryDirectory(prefix="sieve-bench-query-") as tmp:
        root = Path(tmp)
        print(f"[{size:,}] building the collection ...", flush=True)
        built = build_collection(
            root / "qdrant", base, size, optimize=args.index == "hnsw", seed=args.seed
        )
        stack = BenchStack.on_free_ports(root)
        failed = True
        try:
            stack.start_without_worker(lambda url: register(url, built.avg_len))
            timeout = httpx.Timeout(args.request_timeout)
            with (
                httpx.Client(base_url=stack.api_url, timeout=timeout) as api,
                httpx.Client(base_url=stack.hub_url, timeout=timeout) as hub,
            ):
                for text in queries[-3:]:  # warm-up: hub sessions, store pages, connections
                    query_once(api, text)
                print(f"[{size:,}] 1 client ...", flush=True)
                one, direct = phase_one(api, hub, queries, args.queries, args.phase_seconds)
            print(f"[{size:,}] {args.clients} clients ...", flush=True)
            many = phase_concurrent(
                lambda: httpx.Client(base_url=stack.api_url, timeout=timeout),
                queries,
                args.clients,
                args.queries_concurrent,
                args.phase_seconds,
                offset=args.queries,
            )
            stack.check_alive()
            failed = False
        finally:
            stack.stop_and_report(failed)
    return {
        "size": size,
        "index": args.index,
        "build": built.__dict__,
        "phases": [summarize(one), summarize(many)],
        "direct": {
            "n": len(direct.embed_ms),
            "embed_ms": {"p50": pct(direct.embed_ms, 50), "p95": pct(direct.embed_ms, 95)},
            "rerank_ms": {"p50": pct(direct.rerank_ms, 50), "p95": pct(direct.rerank_ms, 95)},
            "sum_ms": {"p50": pct(direct.sums(), 50), "p95": pct(direct.sums(), 95)},
        },
    }


def _f(x: float) -> str:
    return f"{x:,.1f}"


def render(r: dict[str, Any]) -> str:
    """The markdown report for one size."""
    one, many = r["phases"]
    b, d = r["build"], r["direct"]
    header = ["metric (ms)", "1 client p50", "p95", f"{many['clients']} clients p50", "p95"]
    rows = []
    labels = {
        "embed": "embed",
        "recall": "recall",
        "rerank": "rerank",
        "total": "total (in the engine)",
        "overhead": "service overhead = total - stages",
        "client": "client latency",
        "outside": "client - total (HTTP, routing, state, JSON)",
    }
    for key, label in labels.items():
        cells = [label]
        for ph in (one, many):
            stats = ph.get("ms", {}).get(key)
            cells += [_f(stats["p50"]), _f(stats["p95"])] if stats else ["—", "—"]
        rows.append(cells)
    rows.append(
        [
            "baseline: direct hub embed + rerank",
            _f(d["sum_ms"]["p50"]),
            _f(d["sum_ms"]["p95"]),
            "",
            "",
        ]
    )
    rows.append(
        [
            "baseline: direct hub rerank only",
            _f(d["rerank_ms"]["p50"]),
            _f(d["rerank_ms"]["p95"]),
            "",
            "",
        ]
    )
    lines = [
        f"\n### Query: {r['size']:,} chunks ({r['index']} segments; built in {b['build_s']:.0f} s"
        + (f", optimize {b['optimize_s']:.0f} s" if b["optimize_s"] is not None else "")
        + f"; mean chunk {b['mean_chars']:.0f} chars, BM25 avg_len {b['avg_len']:.0f})\n",
        markdown_table(header, rows),
        "",
    ]
    for ph in (one, many):
        over = ph.get("ms", {}).get("overhead")
        met = "met" if over and over["p50"] <= OVERHEAD_TARGET_MS else "MISSED"
        share = ph.get("rerank_share", {})
        lines.append(
            f"- {ph['clients']} client(s): {ph['ok']}/{ph['completed']} ok of {ph['asked']} asked "
            f"in {ph['seconds']:.0f} s ({ph['queries_per_s']:.2f} q/s); errors "
            f"{ph['errors'] or 0}; rerank status {ph['rerank_status']}; rerank share of total "
            f"p50 {share.get('p50', 0):.0%} (of summed time {share.get('of_summed_time', 0):.0%}); "
            f"overhead p50 ≤ {OVERHEAD_TARGET_MS:.0f} ms: {met}"
        )
    if one.get("ms"):
        ratio = one["ms"]["client"]["p50"] / d["sum_ms"]["p50"]
        lines.append(
            f"- 1 client: API latency p50 / direct hub calls p50 = {ratio:.2f}x "
            f"(Sieve adds {one['ms']['client']['p50'] - d['sum_ms']['p50']:+.1f} ms at the median)"
        )
    if many.get("ms") and d["sum_ms"]["p50"]:
        capacity = 1000 / d["sum_ms"]["p50"]
        lines.append(
            f"- {many['clients']} clients: {many['queries_per_s']:.2f} q/s vs "
            f"{capacity:.2f} q/s for the same model calls made one at a time "
            f"({many['queries_per_s'] / capacity:.2f}x)"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse options, run every size, print the tables (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated chunk counts")
    parser.add_argument("--queries", type=int, default=100, help="queries with one client")
    parser.add_argument("--queries-concurrent", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--phase-seconds", type=float, default=150, help="time budget per phase")
    parser.add_argument("--request-timeout", type=float, default=120)
    parser.add_argument("--index", choices=["hnsw", "plain"], default="hnsw")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--policies", action="store_true", help="final policies side by side")
    parser.add_argument("--api-url", default="http://127.0.0.1:8000")
    parser.add_argument("--collection", default="beir-scifact")
    parser.add_argument("--dataset", type=Path, default=SCIFACT_DIR)
    args = parser.parse_args()
    if args.policies:
        from bench.policies import run_policies  # noqa: PLC0415

        print(
            run_policies(
                args.api_url,
                args.collection,
                args.dataset,
                queries=args.queries,
                queries_concurrent=args.queries_concurrent,
                clients=args.clients,
                timeout=args.request_timeout,
            )
        )
        print(f"\ncode: {code_state()}; load average {os.getloadavg()[0]:.1f} at the end")
        return
    code = code_state()  # at the start: others commit in this tree while it runs
    base = scifact_chunks()
    queries = load_queries()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        start = time.perf_counter()
        results.append(run_size(base, queries, size, args))
        print(f"[{size:,}] done in {time.perf_counter() - start:.0f} s", flush=True)
    if args.json:
        report = {"cpus": os.cpu_count(), "code": code, "results": results}
        print(json.dumps(report, indent=2))
        return
    print(
        f"\nQuery benchmark — {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at "
        f"the end; hybrid, rerank on (local hub), top_k 50, defaults otherwise"
    )
    for r in results:
        print(render(r))
    print(f"\ncode: {code}")


if __name__ == "__main__":
    main()
