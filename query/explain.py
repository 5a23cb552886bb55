"""Where a document went in one query: recalled (each leg's rank), reranked, kept or dropped.

Pure: it reads what the engine already has (the recalled candidates, the rerank scores of
the first ones, the decision) and replays the one ranking without the cuts to tell a
document dropped by ``top_n`` from one dropped by ``min_score`` or by autocut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from core.types import ScoredHit
from query.plan import QueryPlan
from query.rank import decide
from reranker import RerankDecision, RerankFailure

__all__ = ["DocumentTrace", "Outcome", "explain"]

Outcome = Literal[
    "returned", "not_recalled", "below_top_n", "dropped_by_min_score", "dropped_by_autocut"
]


@dataclass(frozen=True, slots=True)
class DocumentTrace:
    """One document's way through a query (its best chunk when several were recalled)."""

    document_id: str
    outcome: Outcome
    chunk_id: str | None = None
    recall_rank: int | None = None  # 1-based among the top_k candidates
    dense_rank: int | None = None
    sparse_rank: int | None = None
    late_score: float | None = None
    # Sent to /rerank (within the depth the stage used) and the score it got.
    reranked: bool = False
    rerank_score: float | None = None
    # The place the final order gave it before any cut, and the returned rank if kept.
    ordered_rank: int | None = None
    final_rank: int | None = None
    note: str = ""


def explain(
    plan: QueryPlan,
    hits: Sequence[ScoredHit],
    scores: Sequence[float | None] | RerankFailure | None,
    decision: RerankDecision,
    document_ids: Sequence[str],
) -> list[DocumentTrace]:
    """A trace for each of ``document_ids`` (in that order, each once)."""
    scored = list(scores) if isinstance(scores, list | tuple) else []
    # The same ranking without min_score, top_n or autocut: every candidate's place.
    uncut = decide(
        replace(plan.rank, autocut=0), [h.score for h in hits], scores, top_n=max(len(hits), 1)
    )
    ordered = {item.index: place for place, item in enumerate(uncut.ranked, start=1)}
    returned = {item.index: rank for rank, item in enumerate(decision.ranked, start=1)}
    cutoff = decision.outcome.min_score
    out = []
    for doc in dict.fromkeys(document_ids):
        indexes = [i for i, h in enumerate(hits) if h.payload.document_id == doc]
        if not indexes:
            note = f"not among the {plan.top_k} recalled candidates (top_k)"
            out.append(DocumentTrace(document_id=doc, outcome="not_recalled", note=note))
            continue
        # Its best chunk: the returned one first, then the best placed in the final order.
        i = min(indexes, key=lambda j: (returned.get(j, 10**9), ordered.get(j, 10**9), j))
        hit = hits[i]
        score = scored[i] if i < len(scored) else None
        outcome: Outcome
        if i in returned:
            outcome, note = "returned", ""
        elif cutoff is not None and (score is None or score < cutoff):
            outcome = "dropped_by_min_score"
            note = f"rerank score {_fmt(score)} below min_score {cutoff:g}"
        elif ordered.get(i, 10**9) <= plan.top_n:
            outcome, note = "dropped_by_autocut", "cut at a jump of the final scores"
        else:
            outcome = "below_top_n"
            note = f"ordered {ordered.get(i)} of {len(hits)}, past top_n {plan.top_n}"
        if i >= len(scored) and plan.reranking:
            note = "; ".join(filter(None, [note, f"past the rerank depth ({len(scored)})"]))
        out.append(
            DocumentTrace(
                document_id=doc,
                outcome=outcome,
                chunk_id=hit.id,
                recall_rank=i + 1,
                dense_rank=hit.scores.dense_rank,
                sparse_rank=hit.scores.sparse_rank,
                late_score=hit.scores.late,
                reranked=i < len(scored),
                rerank_score=score,
                ordered_rank=ordered.get(i),
                final_rank=returned.get(i),
                note=note,
            )
        )
    return out


def _fmt(score: float | None) -> str:
    return "none" if score is None else f"{score:.3f}"
