"""One query's ranking plan: the request's fields, else the collection's policy, else settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from core.errors import InvalidInput
from core.query_policy import QueryPolicy
from core.settings import QuerySettings, RerankSettings
from core.types import FusionWeights
from reranker import FusionParams, ScorePolicy
from services.api.schemas_query import QueryRequest

__all__ = ["QueryPlan", "resolve_plan"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """What this query does at each stage."""

    weights: FusionWeights
    rrf_k: float
    depth: int
    final: ScorePolicy
    fusion: FusionParams
    autocut: int | None
    late_weight: float


def _pick(*values: T | None) -> T:
    for value in values:
        if value is not None:
            return value
    raise AssertionError("the settings' default is never None")


def resolve_plan(
    req: QueryRequest,
    policy: QueryPolicy | None,
    query: QuerySettings,
    rerank: RerankSettings,
    *,
    top_k: int,
) -> QueryPlan:
    """Resolve every knob for one request (precedence: request, collection policy, settings).

    Raises:
        InvalidInput: a ``rerank_depth`` above ``top_k``.
    """
    p = policy or QueryPolicy()
    if req.rerank_depth is not None and req.rerank_depth > top_k:
        raise InvalidInput(f"rerank_depth ({req.rerank_depth}) must not exceed top_k ({top_k})")
    depth = min(_pick(req.rerank_depth, p.rerank_depth, rerank.depth), top_k)
    autocut = _pick(req.autocut, p.autocut, rerank.autocut or 0)
    return QueryPlan(
        weights=FusionWeights(
            dense=_pick(p.dense_weight, query.dense_weight),
            sparse=_pick(p.sparse_weight, query.sparse_weight),
        ),
        rrf_k=_pick(p.rrf_k, query.rrf_k),
        depth=depth,
        final=ScorePolicy(_pick(req.final, p.final, rerank.final)),
        fusion=FusionParams(
            recall_weight=_pick(p.fusion_recall_weight, rerank.fusion_recall_weight),
            rerank_weight=_pick(p.fusion_rerank_weight, rerank.fusion_rerank_weight),
            k=_pick(p.fusion_k, rerank.fusion_k),
            window=_pick(p.window, rerank.window),
        ),
        autocut=autocut or None,
        late_weight=_pick(req.late_weight, p.late_weight, query.late_weight),
    )
