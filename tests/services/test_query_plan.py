"""A query's plan: the request's fields win, then the collection's policy, then settings."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.query_policy import QueryPolicy
from core.settings import QuerySettings, RerankSettings
from reranker import ScorePolicy
from services.api.query_plan import resolve_plan
from services.api.schemas_query import QueryRequest

QUERY, RERANK = QuerySettings(), RerankSettings()


def test_settings_are_the_default() -> None:
    plan = resolve_plan(QueryRequest(query="q"), None, QUERY, RERANK, top_k=50)
    assert plan.depth == RERANK.depth
    assert plan.final is ScorePolicy(RERANK.final)
    assert (plan.weights.dense, plan.weights.sparse, plan.rrf_k) == (
        QUERY.dense_weight,
        QUERY.sparse_weight,
        QUERY.rrf_k,
    )
    assert plan.fusion.window == RERANK.window
    assert plan.autocut is None


def test_the_collection_policy_overrides_settings_and_the_request_overrides_both() -> None:
    policy = QueryPolicy(
        dense_weight=1.0, rrf_k=10.0, rerank_depth=30, final="fusion", fusion_k=5.0, autocut=2
    )
    plan = resolve_plan(QueryRequest(query="q"), policy, QUERY, RERANK, top_k=50)
    assert (plan.weights.dense, plan.weights.sparse, plan.rrf_k) == (1.0, QUERY.sparse_weight, 10.0)
    assert (plan.depth, plan.final, plan.fusion.k, plan.autocut) == (
        30,
        ScorePolicy.FUSION,
        5.0,
        2,
    )
    req = QueryRequest(query="q", rerank_depth=5, final="rerank", autocut=0)
    plan = resolve_plan(req, policy, QUERY, RERANK, top_k=50)
    assert (plan.depth, plan.final, plan.autocut) == (5, ScorePolicy.RERANK, None)


def test_depth_never_exceeds_top_k() -> None:
    policy = QueryPolicy(rerank_depth=100)
    assert resolve_plan(QueryRequest(query="q"), policy, QUERY, RERANK, top_k=20).depth == 20
    with pytest.raises(InvalidInput, match="rerank_depth"):
        resolve_plan(QueryRequest(query="q", rerank_depth=30), None, QUERY, RERANK, top_k=20)


def test_late_weight_comes_from_the_request_then_the_policy_then_settings() -> None:
    def late(req: QueryRequest, policy: QueryPolicy | None) -> float:
        return resolve_plan(req, policy, QUERY, RERANK, top_k=50).late_weight

    assert late(QueryRequest(query="q"), None) == QUERY.late_weight
    # A tuned policy that turned the late stage's vote off keeps the recall order.
    assert late(QueryRequest(query="q"), QueryPolicy(late_weight=0.0)) == 0.0
    assert late(QueryRequest(query="q", late_weight=3.0), QueryPolicy(late_weight=0.0)) == 3.0
