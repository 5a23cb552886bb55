"""The untuned default never ranks below its own recall, whatever the reranker says (issue 21).

A property, not a sample: for any recall legs and any rerank scores (a wrong reranker, a
confidently wrong one, one preferring near-duplicates of the query are all just scores),
the default plan's final order is recall's own order. The reranker's scores still reach
the answer and the cutoff; only ``sieve tune`` (held-out evidence) lets them reorder.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from core.settings import QuerySettings, RerankSettings
from query import Legs, decide, rank, resolve_rank
from reranker import RerankFailure, RerankStatus

DEFAULT = resolve_rank(None, QuerySettings(), RerankSettings(), top_k=50)
RECALL_ONLY = replace(DEFAULT, rerank_depth=0)
IDS = [f"c{i}" for i in range(40)]


@st.composite
def legs(draw: st.DrawFn) -> Legs:
    dense_ids = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=30))
    sparse_ids = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=30))
    score = st.floats(0, 1, allow_nan=False)
    dense = sorted(((c, draw(score)) for c in dense_ids), key=lambda t: -t[1])
    sparse = sorted(((c, draw(score) * 20) for c in sparse_ids), key=lambda t: -t[1])
    every = sorted(set(dense_ids) | set(sparse_ids))
    rerank = {c: draw(score) for c in every if draw(st.booleans())}
    late = {c: draw(score) for c in every} if draw(st.booleans()) else {}
    return Legs(dense=dense, sparse=sparse, late=late, rerank=rerank)


@settings(max_examples=300, deadline=None)
@given(legs())
def test_the_default_order_is_recall_order_for_any_rerank_scores(given_legs: Legs) -> None:
    assert DEFAULT.rerank_depth > 0  # the reranker is still asked: its scores are reported
    assert rank(DEFAULT, given_legs, top_k=50) == rank(RECALL_ONLY, given_legs, top_k=50)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=50).map(
        lambda xs: sorted(xs, reverse=True)
    ),
    st.data(),
)
def test_the_default_decision_keeps_recall_positions_and_reports_scores(
    recall: list[float], data: st.DataObject
) -> None:
    depth = min(DEFAULT.rerank_depth, len(recall))
    scores = data.draw(st.lists(st.floats(0, 1, allow_nan=False), min_size=depth, max_size=depth))
    decision = decide(DEFAULT, recall, scores, top_n=len(recall))
    assert [c.index for c in decision.ranked] == list(range(len(recall)))
    assert [c.rerank_score for c in decision.ranked[:depth]] == scores


def test_a_failed_reranker_also_keeps_recall_order() -> None:
    recall = [0.9, 0.8, 0.7]
    failure = RerankFailure(RerankStatus.TIMEOUT, "reranker timed out after 5.0s")
    decision = decide(DEFAULT, recall, failure, top_n=3)
    assert [c.index for c in decision.ranked] == [0, 1, 2]
