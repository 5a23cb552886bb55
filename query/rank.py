"""The one ranking: recall legs → late interaction → rerank policy → cutoff and autocut.

Pure functions over scores. The server's recall legs are fused in the store (the adapters
call ``retriever.fusion``), so the query engine enters at ``decide``; ``sieve tune`` holds
both legs of each query and enters at ``rank``, which fuses them with the same functions
and then calls the same ``decide``. What tune measures is what the server answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.types import QueryMode
from query.plan import QueryPlan, RankPlan
from reranker import (
    OnRerankError,
    RerankDecision,
    RerankFailure,
    finalize_ranking,
)
from retriever.fusion import fuse_legs, late_order

__all__ = ["Legs", "decide", "decide_query", "rank"]


@dataclass(frozen=True, slots=True)
class Legs:
    """One query's recall legs and its stage scores, by chunk id."""

    dense: Sequence[tuple[str, float]]
    sparse: Sequence[tuple[str, float]]
    late: Mapping[str, float]
    rerank: Mapping[str, float]


def decide(
    plan: RankPlan,
    recall_scores: Sequence[float],
    rerank: Sequence[float | None] | RerankFailure | None,
    *,
    top_n: int,
    min_score: float | None = None,
    on_error: OnRerankError = OnRerankError.OPEN,
    model: str | None = None,
    skip_reason: str = "reranking is off",
) -> RerankDecision:
    """The final order of candidates in recall order, given the rerank scores of the first ones."""
    return finalize_ranking(
        recall_scores,
        rerank,
        top_n=top_n,
        min_score=min_score,
        policy=plan.score_policy,
        fusion=plan.fusion,
        on_error=on_error,
        model=model,
        skip_reason=skip_reason,
        autocut_jumps=plan.autocut or None,
    )


def decide_query(
    plan: QueryPlan,
    recall_scores: Sequence[float],
    rerank: Sequence[float | None] | RerankFailure | None,
) -> RerankDecision:
    """``decide`` with the request-level knobs of a resolved query plan."""
    return decide(
        plan.rank,
        recall_scores,
        rerank,
        top_n=plan.top_n,
        min_score=plan.min_score,
        on_error=plan.on_error,
        model=plan.rerank_model if plan.reranking else None,
        skip_reason=plan.skip_reason,
    )


def rank(plan: RankPlan, legs: Legs, *, top_k: int) -> list[str]:
    """The chunk ids the server returns for these legs under ``plan``, best first (all of them).

    A chunk past the rerank depth, or one the legs hold no rerank score for, keeps its
    recall place among the unscored, as on the server.
    """
    fused = fuse_legs(
        QueryMode.HYBRID,
        legs.dense[:top_k],
        legs.sparse[:top_k],
        weights=plan.weights,
        k=plan.rrf_k,
        limit=top_k,
    )
    ids = [hit.id for hit in fused]
    scores = [hit.score for hit in fused]
    if plan.late_weight and legs.late:
        order = late_order(ids, legs.late, plan.late_fusion)
        ids = [ids[i] for i, _ in order]
        scores = [score for _, score in order]
    if plan.rerank_depth == 0 or not ids:
        return ids
    depth = min(plan.rerank_depth, len(ids))
    decision = decide(plan, scores, [legs.rerank.get(cid) for cid in ids[:depth]], top_n=len(ids))
    return decision.select(ids)
