"""Backup and restore of SciFact against re-ingesting it, in the same run and stack.

    .venv/bin/python -m bench.bundles [--docs N | --all] [--late] [--json]

The embedded stack (as ``sieve up`` starts it) ingests the first ``--docs`` SciFact
abstracts (1,000 by default; ``--all``: the 5,183) over HTTP: that time is what moving the
collection costs without bundles (every chunk parsed and embedded again). Then, same
stack: ``sieve backup``'s calls (snapshot job, download) and ``sieve restore`` under
another name, timed apart. Target: restore >= 10x faster than the ingest.

Same answers: a few queries (recall only, no rerank) against the original and the
restored collection through the API (Edge -> Edge) must give the same ids and scores. Then
the bundle is restored in-process into a fresh Edge store and into the server adapter over
qdrant-client's local mode (Edge -> server) and the same recall queries (dense from the
hub, BM25 from the collection's average length) compared between the two.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from qdrant_client import QdrantClient
from sieve_client import SieveClient

from bench.harness import BenchStack, code_state, markdown_table
from bench.ingest import COLLECTION, ingest, load_corpus
from core.types import HybridQuery
from indexing.bundle import BundleModels, open_bundle
from indexing.restore import restore_bundle
from indexing.state_store import StateStore
from ingest.blob_store import LocalBlobStore
from retriever.bm25 import Bm25Encoder
from retriever.edge_store import EdgeChunkStore
from retriever.qdrant_store import QdrantChunkStore
from retriever.store import ChunkStore

RESTORED = "scifact-restored"
TARGET = 10.0
QUERIES = [
    "0-dimensional biomaterials show inductive properties",
    "ALDH1 expression is associated with poorer prognosis for breast cancer",
    "Vitamin D deficiency is linked to multiple sclerosis",
    "Antibiotic resistance spreads through horizontal gene transfer",
    "Exercise improves insulin sensitivity in type 2 diabetes",
]


def _api_answers(client: SieveClient, name: str) -> list[list[tuple[str, float | None]]]:
    return [
        [
            (h.chunk_id, h.scores.fused)
            for h in client.query(name, q, rerank=False, top_n=10).results
        ]
        for q in QUERIES
    ]


def _store_answers(
    store: ChunkStore, name: str, queries: list[HybridQuery]
) -> list[list[tuple[str, float]]]:
    return [[(h.id, h.score) for h in store.query(name, q)] for q in queries]


def _same(a: list[list[tuple[str, Any]]], b: list[list[tuple[str, Any]]], tol: float) -> bool:
    for x, y in zip(a, b, strict=True):
        if [i for i, _ in x] != [i for i, _ in y]:
            return False
        if any(abs((s or 0.0) - (t or 0.0)) > tol for (_, s), (_, t) in zip(x, y, strict=True)):
            return False
    return True


def _queries(hub_url: str, model: str, avg_len: float) -> list[HybridQuery]:
    with httpx.Client(base_url=hub_url, timeout=120) as hub:
        body = hub.post("/v1/embeddings", json={"model": model, "input": QUERIES})
        vectors = [row["embedding"] for row in body.raise_for_status().json()["data"]]
    bm25 = Bm25Encoder(avg_len)
    return [
        HybridQuery(dense=v, sparse=bm25.embed_query(q), limit=10)
        for q, v in zip(QUERIES, vectors, strict=True)
    ]


def _cross_adapter(stack: BenchStack, bundle_path: Path, work: Path) -> dict[str, Any]:
    """Restore the bundle into a fresh Edge store and into the server adapter; compare."""
    state = StateStore.from_url(stack.redis_url)
    out: dict[str, Any] = {}
    answers: dict[str, list[list[tuple[str, float]]]] = {}
    try:
        for kind in ("edge", "server"):
            store: ChunkStore = (
                EdgeChunkStore(work / "edge-copy")
                if kind == "edge"
                else QdrantChunkStore(QdrantClient(path=str(work / "qdrant-local")))
            )
            try:
                bundle = open_bundle(bundle_path, work, max_expanded_bytes=1 << 36)
                try:
                    start = time.perf_counter()
                    result = restore_bundle(
                        bundle,
                        tenant=f"bench-{kind}",
                        name=RESTORED,
                        state=state,
                        store=store,
                        blobs=LocalBlobStore(work / f"blobs-{kind}"),
                        feedback=None,
                        check_models=lambda _m: None,
                    )
                    out[f"{kind}_restore_s"] = time.perf_counter() - start
                finally:
                    bundle.close()
                rec = result.record
                models: BundleModels = bundle.manifest.models
                queries = _queries(stack.hub_url, models.dense_model, rec.bm25_avg_len or 150.0)
                answers[kind] = _store_answers(store, rec.store_name, queries)
            finally:
                store.close()
    finally:
        state.close()
    out["same_answers"] = _same(answers["edge"], answers["server"], 1e-4)
    return out


def run(docs: int | None, *, late: bool) -> dict[str, Any]:
    """Ingest, back up, restore, compare; one stack."""
    code = code_state()
    corpus = load_corpus(docs)
    print(f"{len(corpus.lines):,} documents -> {corpus.chunks:,} chunks", flush=True)
    with BenchStack.running("bundles") as stack, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("ingest ...", flush=True)
        e2e = ingest(stack, corpus, 7200, late=late)
        with SieveClient(stack.api_url, "", timeout=600, upload_timeout=3600) as client:
            before = _api_answers(client, COLLECTION)
            bundle = work / "scifact.sieve"
            print("backup ...", flush=True)
            start = time.perf_counter()
            snap = client.backup(COLLECTION, bundle)
            backup_s = time.perf_counter() - start
            print("restore ...", flush=True)
            start = time.perf_counter()
            restored = client.restore(bundle, name=RESTORED)
            restore_s = time.perf_counter() - start
            after = _api_answers(client, RESTORED)
        cross = _cross_adapter(stack, bundle, work)
        size = bundle.stat().st_size
    return {
        "code": code,
        "documents": len(corpus.lines),
        "chunks": e2e.chunks,
        "late": late,
        "ingest_s": e2e.seconds,
        "backup_s": backup_s,
        "restore_s": restore_s,
        "restore_speedup": e2e.seconds / restore_s,
        "backup_restore_speedup": e2e.seconds / (backup_s + restore_s),
        "bundle_bytes": size,
        "bundle_bytes_per_chunk": size / max(1, snap.chunks or 0),
        "restored_documents": restored.documents,
        "restored_chunks": restored.chunks,
        "edge_to_edge_same": _same(before, after, 1e-6),
        **{f"edge_to_server_{k}": v for k, v in cross.items()},
    }


def main() -> None:
    """Run once and print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--docs", type=int, default=1000, help="SciFact abstracts (first N)")
    parser.add_argument("--all", action="store_true", help="all 5,183 abstracts")
    parser.add_argument("--late", action="store_true", help="a late-interaction collection")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    out = run(None if args.all else args.docs, late=args.late)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    rows = [
        ["documents / chunks", f"{out['documents']:,} / {out['chunks']:,}"],
        ["re-ingest s", f"{out['ingest_s']:.1f}"],
        ["backup s (snapshot + download)", f"{out['backup_s']:.2f}"],
        ["restore s (upload + restore)", f"{out['restore_s']:.2f}"],
        [f"restore speedup (target >= {TARGET:g}x)", f"{out['restore_speedup']:.1f}x"],
        ["backup + restore speedup", f"{out['backup_restore_speedup']:.1f}x"],
        [
            "bundle bytes / per chunk",
            f"{out['bundle_bytes']:,} / {out['bundle_bytes_per_chunk']:,.0f}",
        ],
        ["Edge -> Edge same ids and scores", str(out["edge_to_edge_same"])],
        ["Edge -> server same ids and scores", str(out["edge_to_server_same_answers"])],
        [
            "in-process restore s (edge / server)",
            f"{out['edge_to_server_edge_restore_s']:.2f} / "
            f"{out['edge_to_server_server_restore_s']:.2f}",
        ],
    ]
    print(markdown_table(["measure", "value"], rows))
    print(f"code: {out['code']}")


if __name__ == "__main__":
    main()
