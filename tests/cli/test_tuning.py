"""``sieve tune``'s offline half: recomputing policies, scoring them, k-fold choice, frontier."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.types import ChunkPayload, FusionWeights, LateFusion, LegScores, QueryMode, ScoredHit
from query import RankPlan, rank
from retriever.fusion import fuse_late, fuse_legs
from services.cli.tuning import (
    CandidateScore,
    QueryCandidates,
    TuneResult,
    candidate_grid,
    cross_validate,
    frontier,
    load_candidates,
    save_candidates,
    score_candidates,
    unless_default_is_as_good,
)

# The plans these tests rank start from tune's historic defaults (recall 2:1 k5, no late
# interaction, no rerank; the window policy's fusion 2:1 k2 w5) and vary a few knobs.
BASE = RankPlan(
    dense_weight=2.0,
    sparse_weight=1.0,
    rrf_k=5.0,
    late_weight=0.0,
    late_recall_weight=2.0,
    late_k=2.0,
    rerank_depth=0,
    final="window",
    recall_weight=2.0,
    rerank_weight=1.0,
    fusion_k=2.0,
    window=5,
)


def _plan(**knobs: Any) -> RankPlan:
    """``BASE`` with ``knobs`` changed."""
    return replace(BASE, **knobs)


def _rank(
    cand: RankPlan, q: QueryCandidates, *, top_k: int, late: LateFusion | None = None
) -> list[str]:
    """The server's ranking of ``q`` (``late``: the server's late fusion settings)."""
    if late is not None:
        cand = replace(cand, late_recall_weight=late.recall, late_k=late.k)
    return rank(cand, q.legs, top_k=top_k)


def _query(qid: str, relevant: str, *, rerank_right: bool) -> QueryCandidates:
    """Ten chunks c0..c9 (document d<i>); dense ranks them in order, BM25 in reverse.

    The relevant document sits at recall rank 4; the reranker either finds it (scores it
    top) or is fooled (scores c9 top and the relevant one bottom).
    """
    chunks = [f"{qid}-c{i}" for i in range(10)]
    dense = [(c, 1.0 - i / 10) for i, c in enumerate(chunks)]
    sparse = [(c, 1.0 - i / 10) for i, c in enumerate(reversed(chunks[:6]))]
    rerank = dict.fromkeys(chunks, 0.5)
    target = f"{qid}-c{relevant}"
    if rerank_right:
        rerank[target] = 0.99
    else:
        rerank[target], rerank[chunks[9]] = 0.01, 0.99
    return QueryCandidates(
        qid=qid,
        query=f"query {qid}",
        dense=dense,
        sparse=sparse,
        documents={c: f"{qid}-d{i}" for i, c in enumerate(chunks)},
        rerank=rerank,
        late={},
        doc_tokens=dict.fromkeys(chunks, 100),
        query_tokens=5,
        base_ms=10.0,
        rerank_ms=100.0,
        rerank_pairs=10,
        rerank_cached=0,
    )


def _payload(chunk_id: str) -> ChunkPayload:
    return ChunkPayload(document_id=chunk_id, content_hash="h", chunk_no=0, text="t")


def test_without_rerank_the_order_is_the_servers_fusion() -> None:
    q = _query("a", "3", rerank_right=True)
    cand = _plan(dense_weight=2, sparse_weight=1, rrf_k=5)
    expected = fuse_legs(
        QueryMode.HYBRID, q.dense, q.sparse, weights=FusionWeights(dense=2, sparse=1), k=5,
        limit=10,
    )  # fmt: skip
    assert _rank(cand, q, top_k=10) == [h.id for h in expected]


def test_rerank_depth_limits_what_the_reranker_may_move() -> None:
    q = _query("a", "9", rerank_right=True)
    recall = _rank(_plan(dense_weight=1, sparse_weight=0), q, top_k=10)
    assert recall[-1] == "a-c9"
    shallow = _plan(dense_weight=1, sparse_weight=0, rerank_depth=5, final="rerank")
    deep = _plan(dense_weight=1, sparse_weight=0, rerank_depth=10, final="rerank")
    assert _rank(shallow, q, top_k=10)[-1] == "a-c9"  # never sent: stays last
    assert _rank(deep, q, top_k=10)[0] == "a-c9"


def _dataset(
    n: int, *, rerank_right: bool
) -> tuple[list[QueryCandidates], dict[str, dict[str, int]]]:
    items = [_query(f"q{i}", "3", rerank_right=rerank_right) for i in range(n)]
    qrels = {q.qid: {f"{q.qid}-d3": 1} for q in items}
    return items, qrels


def test_cross_validation_picks_the_reranker_when_it_helps() -> None:
    items, qrels = _dataset(10, rerank_right=True)
    grid = [_plan(), _plan(rerank_depth=10, final="rerank")]
    scores = score_candidates(grid, items, qrels, top_k=10)
    result = cross_validate(scores, sorted(qrels), folds=5)
    assert result.chosen.candidate.final == "rerank"
    assert result.cv_ndcg == pytest.approx(1.0)
    assert set(result.fold_choices) == {result.chosen.candidate.label()}


def test_cross_validation_keeps_recall_when_the_reranker_is_fooled() -> None:
    items, qrels = _dataset(10, rerank_right=False)
    grid = [_plan(), _plan(rerank_depth=10, final="rerank")]
    scores = score_candidates(grid, items, qrels, top_k=10)
    result = cross_validate(scores, sorted(qrels), folds=5)
    assert result.chosen.candidate.rerank_depth == 0
    no_rerank, ce = scores
    assert ce.mean_ndcg(qrels) < no_rerank.mean_ndcg(qrels)


def test_costs_are_modelled_from_the_measured_pair_cost() -> None:
    items, qrels = _dataset(4, rerank_right=True)
    none, ten = score_candidates(
        [_plan(), _plan(rerank_depth=10, final="rerank")], items, qrels, top_k=10
    )
    assert (none.p50_ms, none.tokens) == (10.0, 0.0)
    assert ten.p50_ms == pytest.approx(10.0 + 10 * 10.0)  # 100 ms for 10 pairs measured
    assert ten.tokens == 10 * (5 + 100)
    assert ten.coverage == 1.0
    assert none.recall100 == 1.0


def test_frontier_keeps_only_undominated_candidates() -> None:
    items, qrels = _dataset(4, rerank_right=True)
    grid = [
        _plan(),
        _plan(rerank_depth=10, final="rerank"),
        _plan(rerank_depth=10, final="window", window=1),  # costs pairs, gains nothing
    ]
    scores = score_candidates(grid, items, qrels, top_k=10)
    front = frontier(scores, sorted(qrels))
    assert [s.candidate for s in front] == [grid[0], grid[1]]


def test_too_few_queries_for_the_folds() -> None:
    items, qrels = _dataset(3, rerank_right=True)
    scores = score_candidates([_plan()], items, qrels, top_k=10)
    with pytest.raises(ValueError, match="folds"):
        cross_validate(scores, sorted(qrels), folds=5)


def test_grid_has_late_interaction_only_when_the_collection_has_it() -> None:
    assert all(c.late_weight == 0 for c in candidate_grid(BASE, late=False))
    assert any(c.late_weight > 0 for c in candidate_grid(BASE, late=True))
    assert len(set(candidate_grid(BASE, late=False))) == len(candidate_grid(BASE, late=False))


def test_late_interaction_is_ranked_as_the_server_fuses_it() -> None:
    q = _query("a", "3", rerank_right=True)
    late = {f"a-c{i}": 1.0 - abs(i - 7) / 10 for i in range(10)}  # MaxSim prefers c7
    q = QueryCandidates(**{**q.__dict__, "late": late})
    cand = _plan(dense_weight=2, sparse_weight=1, rrf_k=5)
    recall = fuse_legs(
        QueryMode.HYBRID,
        q.dense,
        q.sparse,
        weights=FusionWeights(dense=2, sparse=1),
        k=5,
        limit=10,
    )
    for weight in (0.5, 1.0, 4.0):
        fusion = LateFusion(recall=2.0, late=weight, k=2.0)
        hits = [
            ScoredHit(id=h.id, score=h.score, scores=LegScores(), payload=_payload(h.id))
            for h in recall
        ]
        server = [h.id for h in fuse_late(hits, late, fusion)]
        offline = _rank(replace(cand, late_weight=weight), q, top_k=10, late=fusion)
        assert offline == server
    plain = _rank(cand, q, top_k=10)
    leaning = _rank(replace(cand, late_weight=4.0), q, top_k=10, late=LateFusion())
    assert leaning.index("a-c7") < plain.index("a-c7")


def test_candidates_round_trip_through_the_cache_file(tmp_path: Path) -> None:
    items, _ = _dataset(2, rerank_right=True)
    path = tmp_path / "cands.jsonl"
    save_candidates(path, items)
    assert load_candidates(path) == items


def test_a_chosen_candidate_becomes_a_stored_policy() -> None:
    policy = _plan(rerank_depth=20, final="fusion").to_policy({"by": "test"})
    assert (policy.rerank_depth, policy.final, policy.provenance) == (20, "fusion", {"by": "test"})


def test_tune_needs_a_dataset_or_feedback_and_reports_a_down_api(tmp_path: Path) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from services.cli.main import app  # noqa: PLC0415
    from tests.servers import free_port  # noqa: PLC0415

    runner = CliRunner()
    down = f"http://127.0.0.1:{free_port()}"
    neither = runner.invoke(app, ["tune", "-c", "c", "--api-url", down])
    assert neither.exit_code == 2
    assert "DATASET_DIR or --feedback" in neither.output
    both = runner.invoke(app, ["tune", str(tmp_path), "-c", "c", "--feedback", "--api-url", down])
    assert both.exit_code == 2
    result = runner.invoke(app, ["tune", "-c", "c", "--feedback", "--api-url", down])
    assert result.exit_code == 1
    assert "sieve tune:" in result.output
    assert "Traceback" not in result.output


def _scored(cand: RankPlan, ndcg: float) -> CandidateScore:
    return CandidateScore(
        candidate=cand,
        ndcg={"q1": ndcg, "q2": ndcg},
        recall100=1.0,
        p50_ms=1.0,
        tokens=0.0,
        coverage=1.0,
    )


def test_tuning_is_kept_only_when_it_beats_the_default_out_of_sample() -> None:
    default = _scored(_plan(rerank_depth=10), 0.70)
    best = _scored(_plan(rerank_depth=20, final="fusion"), 0.74)  # in sample
    overfit = TuneResult(chosen=best, cv_ndcg=0.68, folds=2)
    assert unless_default_is_as_good(overfit, default, ["q1", "q2"]) == (default, True)
    tie = TuneResult(chosen=best, cv_ndcg=0.70, folds=2)
    assert unless_default_is_as_good(tie, default, ["q1", "q2"]) == (default, True)
    real = TuneResult(chosen=best, cv_ndcg=0.72, folds=2)
    assert unless_default_is_as_good(real, default, ["q1", "q2"]) == (best, False)
