"""``explain``: where each document went, replayed from what the engine already had."""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from query import QuerySpec
from tests.query.test_engine import RECALL, FakeReranker, _coll, _engine


def _traces(spec: QuerySpec, reranker: FakeReranker) -> dict[str, dict[str, object]]:
    engine, *_ = _engine({"t--c": RECALL}, reranker)
    out = asyncio.run(engine.run([_coll("c", store="t--c")], spec))
    assert out.explanation is not None
    return {t.document_id: asdict(t) for t in out.explanation}


def test_each_way_out_is_told_apart() -> None:
    # d0..d9 recalled in order; the reranker likes d7 (past the depth of 5: never sent),
    # d3 most, d1 not at all (below min_score), the rest a little.
    reranker = FakeReranker({"d0": 0.5, "d1": 0.05, "d2": 0.5, "d3": 0.9, "d4": 0.5, "d7": 1.0})
    spec = QuerySpec(
        query="q",
        top_k=10,
        top_n=3,
        rerank_depth=5,
        final="rerank",
        min_score=0.1,
        explain_documents=["d1", "d4", "d7", "d9", "missing"],
    )
    traces = _traces(spec, reranker)
    assert traces["d3"]["outcome"] == "returned"
    assert traces["d3"]["final_rank"] == 1
    assert traces["d3"]["reranked"] is True
    assert traces["d1"]["outcome"] == "dropped_by_min_score"
    assert "below min_score 0.1" in str(traces["d1"]["note"])
    assert traces["d4"]["outcome"] == "below_top_n"
    assert traces["d4"]["ordered_rank"] == 4
    # Past the depth it has no rerank score, so min_score drops it (as it drops any unscored).
    assert traces["d7"]["outcome"] == "dropped_by_min_score"
    assert traces["d7"]["reranked"] is False
    assert "past the rerank depth (5)" in str(traces["d7"]["note"])
    assert traces["d9"]["recall_rank"] == 10
    assert traces["missing"]["outcome"] == "not_recalled"
    assert traces["missing"]["recall_rank"] is None
    # The returned ones are explained too, without being named.
    assert {d for d, t in traces.items() if t["outcome"] == "returned"} == {"d3", "d0", "d2"}


def test_autocut_is_named_as_the_cut() -> None:
    reranker = FakeReranker({"d0": 0.99, "d1": 0.98, "d2": 0.2, "d3": 0.19})
    spec = QuerySpec(
        query="q", top_k=10, top_n=4, rerank_depth=4, final="rerank", autocut=1, explain=True,
        explain_documents=["d2"],
    )  # fmt: skip
    traces = _traces(spec, reranker)
    assert traces["d2"]["outcome"] == "dropped_by_autocut"
    assert traces["d2"]["ordered_rank"] == 3


def test_no_explain_no_traces() -> None:
    engine, *_ = _engine({"t--c": RECALL}, FakeReranker({}))
    out = asyncio.run(engine.run([_coll("c", store="t--c")], QuerySpec(query="q")))
    assert out.explanation is None
