"""``sieve eval``: a BEIR dataset through the real query path, scored with trec_eval.

Every query is sent to the running API: dense, sparse and hybrid recall (no rerank), then
the default query settings with every candidate returned (``top_n = top_k``), which carries
each candidate's recall and rerank scores. The ``rerank`` final-score policy is that same
candidate list ordered by ``reranker.finalize_ranking`` (the function the server uses), so
the cross-encoder runs once per query, not once per policy.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytrec_eval

from reranker import FusionParams, ScorePolicy, finalize_ranking

__all__ = [
    "BeirDataset",
    "EvalReport",
    "evaluate_runs",
    "load_beir",
    "per_query_metrics",
    "ranked_documents",
    "run_eval",
]

_MEASURES = {"ndcg_cut.10", "recall.100", "recip_rank"}
MIN_SCORE_SWEEP = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR-layout dataset: corpus, the judged test queries, and their judgements."""

    root: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @property
    def corpus(self) -> Path:
        """The corpus file (JSONL: ``_id``, ``title``, ``text``)."""
        return self.root / "corpus.jsonl"


def load_beir(root: Path, split: str = "test") -> BeirDataset:
    """Read ``queries.jsonl`` and ``qrels/<split>.tsv``; keep the judged queries only."""
    qrels: dict[str, dict[str, int]] = {}
    with (root / "qrels" / f"{split}.tsv").open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            parts = line.rstrip("\n").split("\t")
            if n == 0 and not parts[-1].lstrip("-").isdigit():
                continue  # the header row
            if len(parts) >= 3:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[-1])
    queries: dict[str, str] = {}
    with (root / "queries.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                record = json.loads(line)
                if str(record["_id"]) in qrels:
                    queries[str(record["_id"])] = record["text"]
    return BeirDataset(root=root, queries=queries, qrels=qrels)


def ranked_documents(results: Iterable[dict[str, Any]], query_id: str) -> list[str]:
    """Chunk hits → document ids in rank order (a document counts at its best chunk).

    A hit whose id equals the query id is dropped (the BEIR convention).
    """
    out: list[str] = []
    seen: set[str] = set()
    for hit in results:
        doc = str(hit["document_id"])
        if doc == query_id or doc in seen:
            continue
        seen.add(doc)
        out.append(doc)
    return out


def _as_run(ranking: dict[str, list[str]], depth: int | None = None) -> dict[str, dict[str, float]]:
    # trec_eval sorts by score: give strictly decreasing scores in our rank order.
    return {
        qid: {doc: float(len(docs) - i) for i, doc in enumerate(docs[:depth])}
        for qid, docs in ranking.items()
    }


def evaluate_runs(
    qrels: dict[str, dict[str, int]], ranking: dict[str, list[str]]
) -> dict[str, float]:
    """nDCG@10, Recall@100 and MRR@10 averaged over every judged query (missing = 0)."""
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, _MEASURES)
    full = evaluator.evaluate(_as_run(ranking))
    top10 = evaluator.evaluate(_as_run(ranking, depth=10))
    n = len(qrels)

    def mean(per_query: dict[str, dict[str, float]], key: str) -> float:
        return sum(m.get(key, 0.0) for m in per_query.values()) / n if n else 0.0

    return {
        "ndcg@10": mean(full, "ndcg_cut_10"),
        "recall@100": mean(full, "recall_100"),
        "mrr@10": mean(top10, "recip_rank"),
    }


def per_query_metrics(
    qrels: dict[str, dict[str, int]], ranking: dict[str, list[str]]
) -> dict[str, dict[str, float]]:
    """nDCG@10, Recall@100 and MRR@10 for each judged query (0 where it returned nothing)."""
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, _MEASURES)
    full = evaluator.evaluate(_as_run(ranking))
    top10 = evaluator.evaluate(_as_run(ranking, depth=10))
    return {
        qid: {
            "ndcg@10": full.get(qid, {}).get("ndcg_cut_10", 0.0),
            "recall@100": full.get(qid, {}).get("recall_100", 0.0),
            "mrr@10": top10.get(qid, {}).get("recip_rank", 0.0),
        }
        for qid in qrels
    }


@dataclass
class _QueryOutcome:
    rankings: dict[str, list[str]]
    timings: dict[str, float]
    rerank_status: str
    sweep_hits: list[tuple[float | None, str]]


@dataclass
class EvalReport:
    """Metrics per configuration, latency per stage, and the ``min_score`` sweep."""

    collection: str
    queries: int
    metrics: dict[str, dict[str, float]]
    latency_ms: dict[str, dict[str, float]]
    rerank_statuses: dict[str, int]
    sweep: list[dict[str, float]]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``--json``."""
        return {
            "collection": self.collection,
            "queries": self.queries,
            "metrics": self.metrics,
            "latency_ms": self.latency_ms,
            "rerank_statuses": self.rerank_statuses,
            "min_score_sweep": self.sweep,
            "seconds": round(self.seconds, 1),
            "notes": self.notes,
        }


def _run_query(
    query_fn: Callable[[dict[str, Any]], dict[str, Any]],
    qid: str,
    text: str,
    fusion: FusionParams,
) -> _QueryOutcome:
    rankings: dict[str, list[str]] = {}
    for mode in ("dense", "sparse", "hybrid"):
        out = query_fn({"query": text, "mode": mode, "rerank": False, "top_k": 100, "top_n": 100})
        rankings[mode] = ranked_documents(out["results"], qid)
    out = query_fn({"query": text, "top_k": 50, "top_n": 50, "min_score": 0.0})
    results = out["results"]
    policy = out["rerank"]["final"]
    rankings[f"hybrid+rerank ({policy}, default)"] = ranked_documents(results, qid)
    # The same candidates in recall order, re-ordered by every other policy.
    by_recall = sorted(results, key=lambda h: -(h["scores"]["fused"] or 0.0))
    if out["rerank"]["status"] == "ok":
        depth = int(out["rerank"].get("depth") or len(by_recall))
        for other in ScorePolicy:
            if other.value == policy:
                continue
            decision = finalize_ranking(
                [h["scores"]["fused"] or 0.0 for h in by_recall],
                [h["scores"]["rerank"] for h in by_recall[:depth]],
                top_n=len(by_recall) or 1,
                policy=other,
                fusion=fusion,
            )
            rankings[f"hybrid+rerank ({other.value})"] = ranked_documents(
                decision.select(by_recall), qid
            )
    sweep = [(h["scores"]["rerank"], str(h["document_id"])) for h in results[:10]]
    return _QueryOutcome(rankings, out["timings_ms"], out["rerank"]["status"], sweep)


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 1), "p95": round(p95, 1)}


def run_eval(
    dataset: BeirDataset,
    collection: str,
    query_fn: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    fusion: FusionParams,
    limit: int | None = None,
    concurrency: int = 2,
    progress: Callable[[int], None] | None = None,
) -> EvalReport:
    """Run every judged query through ``query_fn`` (one API call per configuration)."""
    started = time.perf_counter()
    items = list(dataset.queries.items())[:limit]
    qrels = {qid: dataset.qrels[qid] for qid, _ in items}
    outcomes: dict[str, _QueryOutcome] = {}
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = {qid: pool.submit(_run_query, query_fn, qid, text, fusion) for qid, text in items}
        for n, (qid, fut) in enumerate(futures.items(), start=1):
            outcomes[qid] = fut.result()
            if progress is not None:
                progress(n)
    configs = sorted({c for o in outcomes.values() for c in o.rankings}, key=_config_order)
    metrics = {
        config: {
            k: round(v, 4)
            for k, v in evaluate_runs(
                qrels, {qid: o.rankings.get(config, []) for qid, o in outcomes.items()}
            ).items()
        }
        for config in configs
    }
    latency = {
        stage: _percentiles([o.timings.get(stage, 0.0) for o in outcomes.values()])
        for stage in ("embed", "recall", "rerank", "total")
    }
    statuses: dict[str, int] = {}
    for o in outcomes.values():
        statuses[o.rerank_status] = statuses.get(o.rerank_status, 0) + 1
    sweep = []
    for threshold in MIN_SCORE_SWEEP:
        kept = relevant = 0
        for qid, o in outcomes.items():
            for score, doc in o.sweep_hits:
                if score is not None and score >= threshold:
                    kept += 1
                    relevant += int(qrels[qid].get(doc, 0) > 0)
        sweep.append({"min_score": threshold, "kept": kept, "relevant_kept": relevant})
    report = EvalReport(
        collection=collection,
        queries=len(items),
        metrics=metrics,
        latency_ms=latency,
        rerank_statuses=statuses,
        sweep=sweep,
        seconds=time.perf_counter() - started,
    )
    if statuses.get("ok", 0) != len(items):
        report.notes.append(
            f"the rerank stage did not succeed for every query: {statuses}; "
            "rows with rerank include recall-order fallbacks"
        )
    return report


def _config_order(name: str) -> tuple[int, str]:
    order = ["dense", "sparse", "hybrid"]
    return (order.index(name) if name in order else len(order), name)
