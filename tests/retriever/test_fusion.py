"""Weighted reciprocal rank fusion, pure."""

from __future__ import annotations

import pytest

from core.types import FusionWeights, QueryMode
from retriever.fusion import fuse_legs, rank_leg

EQUAL = FusionWeights(dense=1, sparse=1)


def test_rrf_formula_and_order() -> None:
    dense = [("a", 0.9), ("b", 0.8), ("c", 0.1)]
    sparse = [("c", 12.0), ("b", 5.0)]
    hits = fuse_legs(QueryMode.HYBRID, dense, sparse, weights=EQUAL, k=2, limit=10)
    fused = {h.id: h.score for h in hits}
    assert fused["a"] == pytest.approx(1 / 3)
    assert fused["b"] == pytest.approx(1 / 4 + 1 / 4)
    assert fused["c"] == pytest.approx(1 / 5 + 1 / 3)
    assert [h.id for h in hits] == ["c", "b", "a"]
    b = next(h for h in hits if h.id == "b").scores
    assert (b.dense, b.dense_rank, b.sparse, b.sparse_rank) == (0.8, 2, 5.0, 2)
    a = next(h for h in hits if h.id == "a").scores
    assert a.sparse is None
    assert a.sparse_rank is None


def test_weights_flip_the_winner() -> None:
    dense = [("d", 1.0), ("s", 0.5)]
    sparse = [("s", 3.0), ("d", 1.0)]
    dense_heavy = fuse_legs(
        QueryMode.HYBRID, dense, sparse, weights=FusionWeights(dense=2, sparse=1), k=5, limit=2
    )
    sparse_heavy = fuse_legs(
        QueryMode.HYBRID, dense, sparse, weights=FusionWeights(dense=1, sparse=2), k=5, limit=2
    )
    assert [h.id for h in dense_heavy] == ["d", "s"]
    assert [h.id for h in sparse_heavy] == ["s", "d"]


def test_ties_break_by_best_rank_then_id() -> None:
    # x: dense 1st only; y: sparse 1st only -> equal fused scores and best ranks: id decides.
    hits = fuse_legs(QueryMode.HYBRID, [("y2", 1.0)], [("x2", 1.0)], weights=EQUAL, k=1, limit=5)
    assert [h.id for h in hits] == ["x2", "y2"]
    # same fused score, but z has best rank 1 while w's best rank is 2
    dense = [("z", 0.9), ("w", 0.8), ("q", 0.1)]
    sparse = [("q", 9.0), ("w", 8.0), ("z", 1.0)]
    # z: 1/2 + 1/4 = 0.75; w: 1/3 + 1/3 = 0.667; q: 1/4 + 1/2 = 0.75 -> z and q tie on rank 1
    hits = fuse_legs(QueryMode.HYBRID, dense, sparse, weights=EQUAL, k=1, limit=5)
    assert [h.id for h in hits] == ["q", "z", "w"]


def test_engine_tie_order_does_not_matter() -> None:
    one = fuse_legs(QueryMode.DENSE, [("b", 0.5), ("a", 0.5)], [], weights=EQUAL, k=1, limit=5)
    two = fuse_legs(QueryMode.DENSE, [("a", 0.5), ("b", 0.5)], [], weights=EQUAL, k=1, limit=5)
    assert [h.id for h in one] == [h.id for h in two] == ["a", "b"]
    assert rank_leg([("b", 1.0), ("a", 2.0)]) == [("a", 2.0), ("b", 1.0)]


def test_single_leg_modes_keep_raw_scores() -> None:
    dense = fuse_legs(QueryMode.DENSE, [("a", 0.7), ("b", 0.9)], [], weights=EQUAL, k=1, limit=1)
    assert [(h.id, h.score, h.scores.dense_rank, h.scores.fused) for h in dense] == [
        ("b", 0.9, 1, None)
    ]
    sparse = fuse_legs(QueryMode.SPARSE, [], [("a", 2.0), ("b", 4.0)], weights=EQUAL, k=1, limit=5)
    assert [(h.id, h.scores.sparse, h.scores.sparse_rank) for h in sparse] == [
        ("b", 4.0, 1),
        ("a", 2.0, 2),
    ]


def test_zero_weight_leg_only_breaks_ties() -> None:
    dense = [("a", 0.9), ("b", 0.8)]
    sparse = [("b", 5.0), ("a", 1.0)]
    weights = FusionWeights(dense=1, sparse=0)
    hits = fuse_legs(QueryMode.HYBRID, dense, sparse, weights=weights, k=1, limit=5)
    assert [h.id for h in hits] == ["a", "b"]
    assert hits[1].scores.sparse_rank == 1


def test_limit_applies_after_fusion() -> None:
    dense = [(f"d{i}", 1.0 - i / 10) for i in range(5)]
    sparse = [(f"s{i}", 5.0 - i) for i in range(5)]
    assert len(fuse_legs(QueryMode.HYBRID, dense, sparse, weights=EQUAL, k=1, limit=3)) == 3


def test_float_noise_counts_as_a_tie() -> None:
    # the same document scored by two engines (or twice by Edge) may differ in the last bit
    assert rank_leg([("b", 2.5407401), ("a", 2.5407399)]) == [("a", 2.5407399), ("b", 2.5407401)]
    assert rank_leg([("b", 2.5408), ("a", 2.5407)]) == [("b", 2.5408), ("a", 2.5407)]
