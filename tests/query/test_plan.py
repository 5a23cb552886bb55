"""A query's plan: the request's fields win, then the collection's policy, then settings."""

from __future__ import annotations

from dataclasses import fields

import pytest

from core.errors import InvalidInput
from core.query_policy import QueryPolicy
from core.settings import QuerySettings, RerankSettings
from indexing.records import CollectionRecord
from query import PlanDefaults, QuerySpec, resolve_plan, resolve_rank
from reranker import ScorePolicy
from services.api.query_mapping import to_spec
from services.api.schemas_query import QueryRequest

QUERY, RERANK = QuerySettings(), RerankSettings()
DEFAULTS = PlanDefaults(QUERY, RERANK, "the-default-reranker")


def _collection(name: str = "c", **kw: object) -> CollectionRecord:
    base: dict[str, object] = {
        "tenant": "t",
        "name": name,
        "embedding_model": "bge",
        "dimension": 384,
        "created_at": 0.0,
    }
    return CollectionRecord.model_validate({**base, **kw})


def test_settings_are_the_default() -> None:
    plan = resolve_rank(None, QUERY, RERANK, top_k=50)
    assert plan.rerank_depth == RERANK.depth
    assert plan.score_policy is ScorePolicy(RERANK.final)
    assert (plan.weights.dense, plan.weights.sparse, plan.rrf_k) == (
        QUERY.dense_weight,
        QUERY.sparse_weight,
        QUERY.rrf_k,
    )
    assert plan.fusion.window == RERANK.window
    assert plan.autocut == 0


def test_the_collection_policy_overrides_settings_and_the_request_overrides_both() -> None:
    policy = QueryPolicy(
        dense_weight=1.0, rrf_k=10.0, rerank_depth=30, final="fusion", fusion_k=5.0, autocut=2
    )
    plan = resolve_rank(policy, QUERY, RERANK, top_k=50)
    assert (plan.weights.dense, plan.weights.sparse, plan.rrf_k) == (1.0, QUERY.sparse_weight, 10.0)
    assert (plan.rerank_depth, plan.score_policy, plan.fusion.k, plan.autocut) == (
        30,
        ScorePolicy.FUSION,
        5.0,
        2,
    )
    spec = QuerySpec(query="q", rerank_depth=5, final="rerank", autocut=0)
    plan = resolve_rank(policy, QUERY, RERANK, spec, top_k=50)
    assert (plan.rerank_depth, plan.score_policy, plan.autocut) == (5, ScorePolicy.RERANK, 0)


def test_depth_never_exceeds_top_k() -> None:
    coll = _collection(policy=QueryPolicy(rerank_depth=100))
    assert resolve_plan(QuerySpec(query="q", top_k=20), [coll], DEFAULTS).rank.rerank_depth == 20
    with pytest.raises(InvalidInput, match="rerank_depth"):
        resolve_plan(QuerySpec(query="q", top_k=20, rerank_depth=30), [coll], DEFAULTS)


def test_late_weight_comes_from_the_request_then_the_policy_then_settings() -> None:
    def late(spec: QuerySpec, policy: QueryPolicy | None) -> float:
        return resolve_rank(policy, QUERY, RERANK, spec, top_k=50).late_weight

    assert late(QuerySpec(query="q"), None) == QUERY.late_weight
    # A tuned policy that turned the late stage's vote off keeps the recall order.
    assert late(QuerySpec(query="q"), QueryPolicy(late_weight=0.0)) == 0.0
    assert late(QuerySpec(query="q", late_weight=3.0), QueryPolicy(late_weight=0.0)) == 3.0


def test_sizes_and_models_are_checked_once_in_the_plan() -> None:
    one = [_collection()]
    with pytest.raises(InvalidInput, match="top_n"):
        resolve_plan(QuerySpec(query="q", top_k=5, top_n=6), one, DEFAULTS)
    with pytest.raises(InvalidInput, match="over the limit"):
        resolve_plan(QuerySpec(query="q", top_k=QUERY.max_top_k + 1), one, DEFAULTS)
    other = _collection("d", embedding_model="e5")
    with pytest.raises(InvalidInput, match="different embedding models"):
        resolve_plan(QuerySpec(query="q"), [*one, other], DEFAULTS)
    plan = resolve_plan(QuerySpec(query="q"), one, DEFAULTS)
    assert (plan.top_k, plan.top_n) == (QUERY.top_k, min(QUERY.top_n, QUERY.top_k))
    assert plan.rerank_model == "the-default-reranker"
    assert not plan.check_model
    named = resolve_plan(QuerySpec(query="q", rerank_model="m"), one, DEFAULTS)
    assert (named.rerank_model, named.check_model) == ("m", True)
    assert (
        resolve_plan(QuerySpec(query="q"), [_collection(rerank_model="x")], DEFAULTS).rerank_model
        == "x"
    )


def test_reranking_off_says_why() -> None:
    one = [_collection()]
    off = resolve_plan(QuerySpec(query="q", rerank=False), one, DEFAULTS)
    assert (off.reranking, off.skip_reason) == (False, "reranking is off")
    zero = resolve_plan(QuerySpec(query="q", rerank_depth=0), one, DEFAULTS)
    assert (zero.reranking, zero.skip_reason) == (False, "rerank_depth is 0")


def test_the_request_and_the_spec_have_the_same_knobs() -> None:
    # One knob is one field in each: the route maps them by name.
    request = set(QueryRequest.model_fields)
    spec = {f.name for f in fields(QuerySpec)}
    assert request == spec
    full = QueryRequest(query="q", top_k=20, top_n=5, rerank_depth=7, final="fusion", late=False)
    mapped = to_spec(full)
    for name in spec - {"filter"}:
        assert getattr(mapped, name) == getattr(full, name), name
