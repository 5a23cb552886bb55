"""``sieve tune``: choose a collection's query policy by k-fold cross-validation.

Each judged query is sent to the running API once per recall leg (dense, BM25; rerank off)
and once with the cross-encoder over the first ``fetch_depth`` hybrid candidates, which
carries every candidate's rerank score. Every candidate plan (``query.RankPlan``, the type
the server resolves each query to) is then ranked offline by the server's own ranking
(``query.rank``), so a grid of hundreds of plans costs one cross-encoder pass per query.
Scores: pytrec_eval through ``evaluation``.

Cost columns are a model, stated as such: p50 ms a query = the measured embed + recall time
plus the pairs the policy sends times the measured cost of a pair (the cross-encoder is
linear in pairs); rerank tokens = the token estimate (``reranker.estimate_tokens``, the
one the client budgets with) of each pair sent, the document capped as the client caps it.
"""

from __future__ import annotations

import hashlib
import json
import random
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from core.types import MultiVector
from query import Legs, RankPlan, rank
from reranker import estimate_tokens
from retriever.multivector import maxsim, unpack
from services.cli.evaluation import per_query_metrics

__all__ = [
    "CandidateScore",
    "LateCost",
    "QueryCandidates",
    "TuneResult",
    "candidate_grid",
    "cross_validate",
    "fetch_all",
    "fetch_candidates",
    "load_candidates",
    "save_candidates",
    "score_candidates",
    "score_late_offline",
    "unless_default_is_as_good",
]

QueryFn = Callable[[dict[str, Any]], dict[str, Any]]
LEG_DEPTH = 100


@dataclass(frozen=True)
class QueryCandidates:
    """One query's recall legs and rerank scores, as the API reported them."""

    qid: str
    query: str
    dense: list[tuple[str, float]]
    sparse: list[tuple[str, float]]
    documents: dict[str, str]
    rerank: dict[str, float]
    late: dict[str, float]
    doc_tokens: dict[str, int]
    query_tokens: int
    base_ms: float
    rerank_ms: float
    rerank_pairs: int
    rerank_cached: int
    # The passage of each fetched (reranked) chunk, for ``--judge``; empty in old caches.
    texts: dict[str, str] = field(default_factory=dict)
    # Each fetched chunk's text as stored (what the worker sends the late encoder).
    chunk_texts: dict[str, str] = field(default_factory=dict)
    # MaxSim scores tune computed from the hub's token vectors when the collection has no
    # late stage (``score_late_offline``), the measured ms of encoding the query, and the
    # token count of each chunk's vectors (the ingest cost). Cached with the candidates.
    late_offline: dict[str, float] = field(default_factory=dict)
    late_ms: float = 0.0
    late_tokens: dict[str, int] = field(default_factory=dict)
    late_dim: int = 0

    @property
    def legs(self) -> Legs:
        """What the one ranking (``query.rank``) takes: the server's MaxSim scores, else
        the ones computed offline."""
        late = self.late or self.late_offline
        return Legs(dense=self.dense, sparse=self.sparse, late=late, rerank=self.rerank)


def fetch_candidates(
    query_fn: QueryFn, qid: str, text: str, *, fetch_depth: int, document_tokens: int | None
) -> QueryCandidates:
    """Ask the API for both legs and the rerank scores of the first ``fetch_depth`` hits."""
    legs: dict[str, list[tuple[str, float]]] = {}
    documents: dict[str, str] = {}
    base_ms: list[float] = []
    for mode in ("dense", "sparse"):
        out = query_fn(
            {"query": text, "mode": mode, "rerank": False, "top_k": LEG_DEPTH, "top_n": LEG_DEPTH}
        )
        legs[mode] = [(h["chunk_id"], float(h["scores"][mode] or 0.0)) for h in out["results"]]
        documents.update({h["chunk_id"]: str(h["document_id"]) for h in out["results"]})
        timings = out["timings_ms"]
        base_ms.append(timings.get("embed", 0.0) + timings.get("recall", 0.0))
    out = query_fn(
        {
            "query": text,
            "top_k": fetch_depth,
            "top_n": fetch_depth,
            "rerank_depth": fetch_depth,
            "min_score": 0.0,
            "final": "rerank",
            "autocut": 0,
        }
    )
    rerank: dict[str, float] = {}
    late: dict[str, float] = {}
    doc_tokens: dict[str, int] = {}
    texts: dict[str, str] = {}
    chunk_texts: dict[str, str] = {}
    if out["rerank"]["status"] == "ok":
        for h in out["results"]:
            scores = h["scores"]
            if scores.get("rerank") is not None:
                rerank[h["chunk_id"]] = float(scores["rerank"])
            if scores.get("late") is not None:
                late[h["chunk_id"]] = float(scores["late"])
    for h in out["results"]:
        documents[h["chunk_id"]] = str(h["document_id"])
        doc_tokens[h["chunk_id"]] = _capped_tokens(h, document_tokens)
        texts[h["chunk_id"]] = _passage(h)
        chunk_texts[h["chunk_id"]] = str(h.get("text") or "")
    return QueryCandidates(
        qid=qid,
        query=text,
        dense=legs["dense"],
        sparse=legs["sparse"],
        documents=documents,
        rerank=rerank,
        late=late,
        doc_tokens=doc_tokens,
        query_tokens=estimate_tokens(text),
        # The hybrid call embeds once and queries both legs: the dense call's cost.
        base_ms=base_ms[0],
        rerank_ms=float(out["timings_ms"].get("rerank", 0.0)),
        rerank_pairs=len(rerank),
        rerank_cached=int(out["rerank"].get("cached") or 0),
        texts=texts,
        chunk_texts=chunk_texts,
    )


def _passage(hit: dict[str, Any]) -> str:
    title, text = hit.get("title"), hit.get("text") or ""
    return f"{title}\n{text}" if title and title not in text[: len(title) + 8] else text


def _capped_tokens(hit: dict[str, Any], cap: int | None) -> int:
    tokens = estimate_tokens(_passage(hit))
    return min(tokens, cap) if cap is not None else tokens


def fetch_all(
    query_fn: QueryFn,
    queries: dict[str, str],
    *,
    fetch_depth: int,
    document_tokens: int | None,
    concurrency: int = 2,
    progress: Callable[[int], None] | None = None,
) -> list[QueryCandidates]:
    """:func:`fetch_candidates` for every query, ``concurrency`` at a time, in query order."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [
            pool.submit(
                fetch_candidates,
                query_fn,
                qid,
                text,
                fetch_depth=fetch_depth,
                document_tokens=document_tokens,
            )
            for qid, text in queries.items()
        ]
        out = []
        for n, fut in enumerate(futures, start=1):
            out.append(fut.result())
            if progress is not None:
                progress(n)
    return out


def save_candidates(path: Path, items: Sequence[QueryCandidates]) -> None:
    """Write fetched candidates as JSON lines (``--cache``), to re-tune without the API."""
    with path.open("w", encoding="utf-8") as fh:
        for item in items:
            fh.write(json.dumps(asdict(item)) + "\n")


def load_candidates(path: Path) -> list[QueryCandidates]:
    """Read :func:`save_candidates`' file."""
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                raw = json.loads(line)
                raw["dense"] = [tuple(x) for x in raw["dense"]]
                raw["sparse"] = [tuple(x) for x in raw["sparse"]]
                out.append(QueryCandidates(**raw))
    return out


TokenEncoder = Callable[[list[str]], list[MultiVector]]


@dataclass(frozen=True)
class LateCost:
    """What late interaction costs, measured while tune scored it offline.

    ``query_ms``: median ms the hub took to encode one query's token vectors (a query with
    the late stage waits on it beside the dense embedding); ``tokens_per_chunk``: mean
    token vectors a chunk stores (``dim`` floats each: the ingest and storage cost).
    ``encoded``: texts sent to the hub this run (0 when the cache held every score).
    """

    encoded: int
    query_ms: float
    tokens_per_chunk: float
    dim: int


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def score_late_offline(
    items: Sequence[QueryCandidates],
    encode: TokenEncoder,
    *,
    batch: int = 32,
    timed_queries: int = 20,
) -> tuple[list[QueryCandidates], LateCost]:
    """MaxSim of every query against its fetched candidates, from the hub's token vectors.

    For a collection without the late stage: only the fetched candidates' texts and the
    queries are encoded (each distinct text once, by its hash; ``batch`` a request), with
    the encoder the worker uses, and scored by the engines' MaxSim (``maxsim``). Items
    that already carry scores (a ``--cache`` re-run) are not encoded again. The first
    ``timed_queries`` queries are encoded one a request, as the server does, for the
    latency.
    """
    todo = [q for q in items if not q.late and not q.late_offline and q.chunk_texts]
    texts: dict[str, str] = {}
    for q in todo:
        for text in q.chunk_texts.values():
            if text.strip():
                texts.setdefault(_text_key(text), text)
    docs: dict[str, Any] = {}
    keys = list(texts)
    for start in range(0, len(keys), batch):
        part = keys[start : start + batch]
        for key, vec in zip(part, encode([texts[k] for k in part]), strict=True):
            docs[key] = unpack(vec)
    queries: dict[str, Any] = {}
    query_ms: dict[str, float] = {}
    for q in todo[:timed_queries]:
        t0 = time.perf_counter()
        queries[q.qid] = unpack(encode([q.query])[0])
        query_ms[q.qid] = (time.perf_counter() - t0) * 1000
    rest = todo[timed_queries:]
    for start in range(0, len(rest), batch):
        qpart = rest[start : start + batch]
        for q, vec in zip(qpart, encode([c.query for c in qpart]), strict=True):
            queries[q.qid] = unpack(vec)
    median_ms = statistics.median(query_ms.values()) if query_ms else 0.0
    pending = {q.qid for q in todo}
    out = []
    for q in items:
        if q.qid not in pending:
            out.append(q)
            continue
        scored = {
            cid: (maxsim(queries[q.qid], docs[k]), int(docs[k].shape[0]), int(docs[k].shape[1]))
            for cid, text in q.chunk_texts.items()
            if (k := _text_key(text)) in docs
        }
        out.append(
            replace(
                q,
                late_offline={cid: s for cid, (s, _, _) in scored.items()},
                late_ms=query_ms.get(q.qid, median_ms),
                late_tokens={cid: n for cid, (_, n, _) in scored.items()},
                late_dim=next((d for _, _, d in scored.values()), 0),
            )
        )
    counts = [n for q in out for n in q.late_tokens.values()]
    timed = [q.late_ms for q in out if q.late_offline]
    return out, LateCost(
        encoded=len(texts) + len(todo),
        query_ms=statistics.median(timed) if timed else 0.0,
        tokens_per_chunk=statistics.fmean(counts) if counts else 0.0,
        dim=max((q.late_dim for q in out), default=0),
    )


def _documents(chunks: Iterable[str], q: QueryCandidates) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for cid in chunks:
        doc = q.documents.get(cid, cid)
        if doc == q.qid or doc in seen:
            continue
        seen.add(doc)
        out.append(doc)
    return out


@dataclass
class CandidateScore:
    """A candidate's per-query nDCG@10 and its averages and modelled costs."""

    candidate: RankPlan
    ndcg: dict[str, float]
    recall100: float
    p50_ms: float
    tokens: float
    coverage: float

    def mean_ndcg(self, qids: Iterable[str]) -> float:
        """Mean nDCG@10 over ``qids``."""
        values = [self.ndcg.get(q, 0.0) for q in qids]
        return sum(values) / len(values) if values else 0.0


def score_candidates(
    candidates: Sequence[RankPlan],
    items: Sequence[QueryCandidates],
    qrels: dict[str, dict[str, int]],
    *,
    top_k: int,
) -> list[CandidateScore]:
    """Every candidate over every query: nDCG@10 per query, Recall@100, modelled cost.

    Each ranking is the server's own (``query.rank``, with each plan's late fusion).
    """
    judged = [q for q in items if q.qid in qrels]
    sub = {q.qid: qrels[q.qid] for q in judged}
    pair_ms = _pair_ms(judged)
    recall_cache: dict[tuple[float, ...], float] = {}
    out = []
    for cand in candidates:
        ranking = {q.qid: _documents(rank(cand, q.legs, top_k=top_k), q) for q in judged}
        per_query = per_query_metrics(sub, ranking)
        wide = replace(cand, rerank_depth=0, autocut=0)
        recall = (cand.dense_weight, cand.sparse_weight, cand.rrf_k)
        key = (*recall, cand.late_weight, cand.late_recall_weight, cand.late_k)
        if key not in recall_cache:
            deep = {q.qid: _documents(rank(wide, q.legs, top_k=LEG_DEPTH), q) for q in judged}
            recall_cache[key] = statistics.fmean(
                m["recall@100"] for m in per_query_metrics(sub, deep).values()
            )
        ms, tokens, covered, sent = [], [], 0, 0
        for q in judged:
            ids = rank(wide, q.legs, top_k=top_k)[: cand.rerank_depth]
            # Late scored offline: the query would also wait on its token vectors.
            late_ms = q.late_ms if cand.late_weight and not q.late else 0.0
            ms.append(q.base_ms + late_ms + pair_ms * len(ids))
            tokens.append(sum(q.query_tokens + q.doc_tokens.get(c, 0) for c in ids))
            covered += sum(1 for c in ids if c in q.rerank)
            sent += len(ids)
        out.append(
            CandidateScore(
                candidate=cand,
                ndcg={qid: m["ndcg@10"] for qid, m in per_query.items()},
                recall100=recall_cache[key],
                p50_ms=statistics.median(ms) if ms else 0.0,
                tokens=statistics.fmean(tokens) if tokens else 0.0,
                coverage=covered / sent if sent else 1.0,
            )
        )
    return out


def _pair_ms(items: Sequence[QueryCandidates]) -> float:
    """Median measured rerank time a pair, over queries the cache did not serve."""
    values = [q.rerank_ms / q.rerank_pairs for q in items if q.rerank_pairs and not q.rerank_cached]
    return statistics.median(values) if values else 0.0


def candidate_grid(
    base: RankPlan, *, late: bool, depths: Sequence[int] = (10, 20, 30, 50)
) -> list[RankPlan]:
    """The plans ``sieve tune`` compares, varied from ``base`` (the server's resolved default).

    Late interaction is varied only when ``late`` (the collection has it, or tune scored
    it offline from the hub's token vectors).
    """
    recalls = [(2.0, 1.0, 5.0), (1.0, 1.0, 5.0), (3.0, 1.0, 5.0), (2.0, 1.0, 2.0), (2.0, 1.0, 10.0)]
    lates = (0.0, 0.5, 1.0) if late else (0.0,)
    finals: list[dict[str, Any]] = [{"final": "rerank"}]
    finals.extend(
        {"final": "fusion", "recall_weight": rw, "rerank_weight": xw, "fusion_k": k}
        for rw, xw in ((1.0, 1.0), (2.0, 1.0), (3.0, 1.0), (1.0, 2.0))
        for k in (2.0, 5.0, 10.0)
    )
    for w in (2, 3, 5, 10):
        for rw, xw in ((1.0, 1.0), (2.0, 1.0), (1.0, 2.0)):
            finals.append(
                {
                    "final": "window",
                    "window": w,
                    "recall_weight": rw,
                    "rerank_weight": xw,
                    "fusion_k": 2.0,
                }
            )
    grid = []
    for dw, sw, k in recalls:
        for lw in lates:
            recall = replace(
                base,
                dense_weight=dw,
                sparse_weight=sw,
                rrf_k=k,
                late_weight=lw,
                rerank_depth=0,
                autocut=0,
            )
            grid.append(recall)
            for depth in depths:
                grid.extend(replace(recall, rerank_depth=depth, **f) for f in finals)
    return grid


@dataclass
class TuneResult:
    """The chosen candidate, its cross-validated score, and every candidate's scores."""

    chosen: CandidateScore
    cv_ndcg: float
    folds: int
    fold_choices: list[str] = field(default_factory=list)
    scores: list[CandidateScore] = field(default_factory=list)


def _best(scores: Sequence[CandidateScore], qids: Sequence[str]) -> CandidateScore:
    # Best mean nDCG@10; among equals (to 4 decimals) the cheaper one.
    return max(scores, key=lambda s: (round(s.mean_ndcg(qids), 4), -s.p50_ms, -s.tokens))


def cross_validate(
    scores: Sequence[CandidateScore], qids: Sequence[str], *, folds: int = 5, seed: int = 13
) -> TuneResult:
    """k-fold: choose on k-1 folds, score the choice on the held-out fold; then choose on all.

    Raises:
        ValueError: fewer judged queries than folds, or no candidate.
    """
    if not scores:
        raise ValueError("no candidate policy to choose from")
    if len(qids) < folds or folds < 2:
        raise ValueError(f"{len(qids)} judged queries cannot make {folds} folds")
    order = sorted(qids)
    random.Random(seed).shuffle(order)  # noqa: S311 - a reproducible split, not a secret
    parts = [order[i::folds] for i in range(folds)]
    held: list[float] = []
    choices = []
    for i, test in enumerate(parts):
        train = [q for j, part in enumerate(parts) if j != i for q in part]
        pick = _best(scores, train)
        choices.append(pick.candidate.label())
        held.extend(pick.ndcg.get(q, 0.0) for q in test)
    chosen = _best(scores, order)
    return TuneResult(
        chosen=chosen,
        cv_ndcg=sum(held) / len(held),
        folds=folds,
        fold_choices=choices,
        scores=list(scores),
    )


def unless_default_is_as_good(
    result: TuneResult, default: CandidateScore, qids: Sequence[str]
) -> tuple[CandidateScore, bool]:
    """The tuned choice, or the untuned default when tuning does not beat it out of sample.

    The cross-validated score is what choosing among the grid earns on queries it did not
    see; the default, chosen without them, earns its plain mean. With few judged queries
    and many candidates the choice can overfit below the default: then keep the default
    (True). Ties keep the default too (it is the one chosen by a robustness rule).
    """
    if result.cv_ndcg > default.mean_ndcg(qids) + 1e-9:
        return result.chosen, False
    return default, True


def frontier(scores: Sequence[CandidateScore], qids: Sequence[str]) -> list[CandidateScore]:
    """The candidates no other beats on both nDCG@10 and p50 cost, cheapest first."""
    ranked = sorted(scores, key=lambda s: (s.p50_ms, -s.mean_ndcg(qids)))
    out: list[CandidateScore] = []
    best = float("-inf")
    for s in ranked:
        value = s.mean_ndcg(qids)
        if value > best + 1e-9:
            out.append(s)
            best = value
    return out
