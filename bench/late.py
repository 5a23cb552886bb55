"""Late interaction benchmark: ingest rate, query latency and nDCG@10, in one run.

    .venv/bin/python -m bench.late [--other-docs N] [--queries N] [--json]

Corpus: a SciFact subset, every document judged relevant for a test query plus the first
``--other-docs`` others (the full 5,183 takes ~20 min per ingest on 2 shared cores), so all
300 test queries keep their relevant documents and face fewer distractors than in the full
corpus (absolute nDCG is higher than on the full set; the differences are what to read).

The embedded stack (``sieve up``'s supervisor) ingests the subset twice in the same run: into
a plain collection and into one created with ``late_interaction``; the rates are compared.
Then every query runs, one client, rerank off (this measures the first stage), through the
API against the late collection under each setting, the settings interleaved per query so
load from other processes falls on all of them: hybrid only (``late: false``), hybrid then
MaxSim fused by weighted RRF (recall:late = 1:1 and 2:1, k=2), and MaxSim order alone.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import httpx

from bench.harness import SCIFACT_DIR, BenchStack, code_state, markdown_table, pct
from bench.ingest import Corpus, corpus_from_lines, ingest
from services.cli.evaluation import evaluate_runs, load_beir, ranked_documents

SETTINGS: dict[str, dict[str, Any]] = {
    "hybrid (late off)": {"late": False},
    "hybrid + late, RRF 1:1": {"late_recall_weight": 1, "late_weight": 1},
    "hybrid + late, RRF 2:1": {"late_recall_weight": 2, "late_weight": 1},
    "late order alone (0:1)": {"late_recall_weight": 0, "late_weight": 1},
}
PLAIN, LATE = "plain", "late"


def subset(other_docs: int) -> tuple[Corpus, set[str]]:
    """Every judged-relevant document plus the first ``other_docs`` others."""
    dataset = load_beir(SCIFACT_DIR)
    relevant = {doc for judged in dataset.qrels.values() for doc, g in judged.items() if g > 0}
    lines: list[bytes] = []
    others = 0
    with (SCIFACT_DIR / "corpus.jsonl").open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            doc_id = str(json.loads(line)["_id"])
            if doc_id in relevant or others < other_docs:
                others += doc_id not in relevant
                lines.append(line.rstrip(b"\n"))
    return corpus_from_lines(lines), relevant


def run(other_docs: int, queries: int | None, timeout_s: float) -> dict[str, Any]:
    """Ingest plain and late, then every query under every setting."""
    code = code_state()
    dataset = load_beir(SCIFACT_DIR)
    corpus, _ = subset(other_docs)
    qids = sorted(dataset.queries)[:queries] if queries else sorted(dataset.queries)
    print(f"{len(corpus.lines):,} documents -> {corpus.chunks:,} chunks; {len(qids)} queries")
    rankings: dict[str, dict[str, list[str]]] = {name: {} for name in SETTINGS}
    rankings["plain collection, hybrid"] = {}
    latency: dict[str, list[float]] = {name: [] for name in SETTINGS}
    recall_ms: dict[str, list[float]] = {name: [] for name in SETTINGS}
    with BenchStack.running("late") as stack:
        print("ingest, plain ...", flush=True)
        plain = ingest(stack, corpus, timeout_s, collection=PLAIN)
        print("ingest, late interaction ...", flush=True)
        late = ingest(stack, corpus, timeout_s, collection=LATE, late=True)
        print("queries ...", flush=True)
        with httpx.Client(base_url=stack.api_url, timeout=120) as api:
            for n, qid in enumerate(qids):
                text = dataset.queries[qid]
                base = {"query": text, "rerank": False, "top_k": 50, "top_n": 50}
                for name, extra in SETTINGS.items():
                    start = time.perf_counter()
                    resp = api.post(f"/v1/collections/{LATE}/query", json={**base, **extra})
                    resp.raise_for_status()
                    latency[name].append((time.perf_counter() - start) * 1000)
                    out = resp.json()
                    recall_ms[name].append(out["timings_ms"]["recall"])
                    rankings[name][qid] = ranked_documents(out["results"], qid)
                resp = api.post(f"/v1/collections/{PLAIN}/query", json=base)
                resp.raise_for_status()
                rankings["plain collection, hybrid"][qid] = ranked_documents(
                    resp.json()["results"], qid
                )
                if n % 50 == 49:
                    print(f"  {n + 1} queries", flush=True)
    qrels = {q: dataset.qrels[q] for q in qids}
    quality = {name: evaluate_runs(qrels, ranking) for name, ranking in rankings.items()}
    plain_rate = plain.chunks / plain.seconds
    late_rate = late.chunks / late.seconds
    return {
        "documents": len(corpus.lines),
        "chunks": corpus.chunks,
        "queries": len(qids),
        "ingest": {
            "plain_chunks_per_s": plain_rate,
            "late_chunks_per_s": late_rate,
            "ratio": late_rate / plain_rate,
            "plain_seconds": plain.seconds,
            "late_seconds": late.seconds,
            "storage_per_chunk": late.storage_per_chunk,
            "states": [plain.states, late.states],
        },
        "latency_ms": {
            name: {
                "p50": pct(v, 50),
                "p95": pct(v, 95),
                "recall_p50": pct(recall_ms[name], 50),
                "recall_p95": pct(recall_ms[name], 95),
            }
            for name, v in latency.items()
        },
        "quality": quality,
        "code": code,
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }


def render(r: dict[str, Any]) -> str:
    """The markdown report."""
    ing = r["ingest"]
    storage = ing["storage_per_chunk"] or {}
    base = r["quality"]["hybrid (late off)"]["ndcg@10"]
    base_p50 = r["latency_ms"]["hybrid (late off)"]["p50"]
    rows = []
    for name, q in r["quality"].items():
        lat = r["latency_ms"].get(name)
        rows.append(
            [
                name,
                f"{q['ndcg@10']:.4f}",
                f"{q['ndcg@10'] - base:+.4f}",
                f"{q['recall@100']:.4f}",
                f"{q['mrr@10']:.4f}",
                "" if lat is None else f"{lat['p50']:.1f} / {lat['p95']:.1f}",
                "" if lat is None else f"{lat['p50'] / base_p50:.2f}x",
                "" if lat is None else f"{lat['recall_p50']:.1f}",
            ]
        )
    met = "met" if ing["ratio"] >= 0.45 else "MISSED"
    return "\n".join(
        [
            f"\n### Late interaction: SciFact subset, {r['documents']:,} documents "
            f"({r['chunks']:,} chunks), {r['queries']} test queries ({r['cpus']} CPUs, load "
            f"average {r['load_average']:.1f} at the end)\n",
            markdown_table(
                [
                    "setting (rerank off)",
                    "nDCG@10",
                    "vs hybrid",
                    "Recall@100*",
                    "MRR@10",
                    "query ms p50 / p95",
                    "p50 vs hybrid",
                    "store ms p50",
                ],
                rows,
            ),
            "\n\\* of the 50 candidates returned.\n",
            markdown_table(
                ["ingest", "plain", "late interaction", "late / plain"],
                [
                    [
                        "chunks/s",
                        f"{ing['plain_chunks_per_s']:.2f}",
                        f"{ing['late_chunks_per_s']:.2f}",
                        f"{ing['ratio']:.1%} (target ≥ 45 %: {met})",
                    ],
                    ["wall s", f"{ing['plain_seconds']:.1f}", f"{ing['late_seconds']:.1f}", ""],
                    [
                        "token vectors per chunk; bytes float32 / int8",
                        "",
                        f"{storage.get('late_tokens')}; {storage.get('late_bytes_float32')} / "
                        f"{storage.get('late_bytes_int8')}",
                        "",
                    ],
                ],
            ),
            f"\ndocument states: {ing['states']}",
            f"code: {r['code']}",
        ]
    )


def main() -> None:
    """Parse options, run, print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--other-docs", type=int, default=1000, help="unjudged documents added")
    parser.add_argument("--queries", type=int, default=None, help="first N test queries")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for jobs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    result = run(args.other_docs, args.queries, args.timeout)
    print(json.dumps(result, indent=2) if args.json else render(result))


if __name__ == "__main__":
    main()
