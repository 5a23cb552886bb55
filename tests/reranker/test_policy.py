"""The rerank stage's decision: cutoff precedence, top_n, final-score policy, degradation."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import InvalidInput, UpstreamRejected, UpstreamUnavailable
from reranker.codes import RerankErrorCode
from reranker.policy import (
    DEFAULT_POLICY,
    FusionParams,
    OnRerankError,
    RerankDecision,
    RerankFailure,
    RerankStatus,
    ScorePolicy,
    autocut,
    failure_from_error,
    resolve_min_score,
)
from reranker.policy import finalize_ranking as _finalize


def finalize_ranking(*args: Any, **kwargs: Any) -> RerankDecision:
    """These tests order by the rerank score unless they name another policy."""
    kwargs.setdefault("policy", ScorePolicy.RERANK)
    return _finalize(*args, **kwargs)


# Five candidates in recall order (recall ranks 1..5) and what the reranker thought of them.
RECALL = [0.9, 0.8, 0.7, 0.6, 0.5]
RERANK = [0.10, 0.95, 0.02, 0.60, 0.40]


def test_rerank_policy_orders_by_rerank_score() -> None:
    decision = finalize_ranking(RECALL, RERANK, model="m")
    assert [c.index for c in decision.ranked] == [1, 3, 4, 0, 2]
    assert [c.final_score for c in decision.ranked] == [0.95, 0.60, 0.40, 0.10, 0.02]
    first = decision.ranked[0]
    assert (first.recall_rank, first.recall_score, first.rerank_rank) == (2, 0.8, 1)
    assert decision.outcome.status is RerankStatus.OK
    assert decision.outcome.candidates == 5
    assert decision.outcome.model == "m"


def test_min_score_applies_before_top_n() -> None:
    decision = finalize_ranking(RECALL, RERANK, min_score=0.3, top_n=2)
    assert [c.index for c in decision.ranked] == [1, 3]
    assert decision.outcome.dropped_by_cutoff == 2  # 0.10 and 0.02; 0.40 lost to top_n
    assert decision.outcome.min_score == 0.3


def test_an_empty_answer_is_valid() -> None:
    decision = finalize_ranking(RECALL, RERANK, min_score=0.99)
    assert decision.ranked == ()
    assert decision.outcome.status is RerankStatus.OK
    assert decision.outcome.dropped_by_cutoff == 5


def test_min_score_is_inclusive() -> None:
    decision = finalize_ranking(RECALL, RERANK, min_score=0.6)
    assert [c.index for c in decision.ranked] == [1, 3]


def test_default_top_n_is_ten() -> None:
    decision = finalize_ranking([0.5] * 30, [0.5] * 30)
    assert len(decision.ranked) == 10


def test_ties_keep_recall_order() -> None:
    decision = finalize_ranking([0.9, 0.8, 0.7], [0.5, 0.9, 0.5])
    assert [c.index for c in decision.ranked] == [1, 0, 2]


def test_unscored_candidates_come_last_or_fall_to_the_cutoff() -> None:
    scores: list[float | None] = [None, 0.2, 0.9]
    assert [c.index for c in finalize_ranking([0.9, 0.8, 0.7], scores).ranked] == [2, 1, 0]
    cut = finalize_ranking([0.9, 0.8, 0.7], scores, min_score=0.1)
    assert [c.index for c in cut.ranked] == [2, 1]
    assert cut.outcome.dropped_by_cutoff == 1


def test_fusion_blends_recall_and_rerank_ranks() -> None:
    equal = finalize_ranking(
        RECALL, RERANK, policy=ScorePolicy.FUSION, fusion=FusionParams(1.0, 1.0, k=1.0)
    )
    # rerank ranks: c1=1, c3=2, c4=3, c0=4, c2=5; recall ranks are positions + 1.
    # c0: 1/2+1/5=0.70, c1: 1/3+1/2=0.83, c2: 1/4+1/6=0.42, c3: 1/5+1/3=0.53, c4: 1/6+1/4=0.42
    assert [c.index for c in equal.ranked] == [1, 0, 3, 2, 4]
    assert equal.ranked[0].final_score == pytest.approx(1 / 3 + 1 / 2)
    assert equal.ranked[0].rerank_score == 0.95  # every stage's score is kept


def test_fusion_order_follows_the_weights() -> None:
    recall_heavy = finalize_ranking(
        RECALL, RERANK, policy=ScorePolicy.FUSION, fusion=FusionParams(10.0, 1.0, k=1.0)
    )
    rerank_heavy = finalize_ranking(
        RECALL, RERANK, policy=ScorePolicy.FUSION, fusion=FusionParams(1.0, 10.0, k=1.0)
    )
    assert [c.index for c in recall_heavy.ranked] == [0, 1, 2, 3, 4]
    assert [c.index for c in rerank_heavy.ranked] == [1, 3, 4, 0, 2]


def test_fusion_still_applies_the_cutoff_on_rerank_scores() -> None:
    decision = finalize_ranking(
        RECALL, RERANK, policy=ScorePolicy.FUSION, min_score=0.3, fusion=FusionParams(k=1.0)
    )
    assert sorted(c.index for c in decision.ranked) == [1, 3, 4]
    assert decision.outcome.dropped_by_cutoff == 2


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (RerankErrorCode.TIMEOUT, RerankStatus.TIMEOUT),
        (RerankErrorCode.CIRCUIT_OPEN, RerankStatus.CIRCUIT_OPEN),
        (RerankErrorCode.UNAVAILABLE, RerankStatus.FAILED),
        (RerankErrorCode.RATE_LIMITED, RerankStatus.FAILED),
    ],
)
def test_fail_open_answers_in_recall_order_with_the_status(
    code: RerankErrorCode, status: RerankStatus
) -> None:
    failure = failure_from_error(UpstreamUnavailable("hub down", code=code))
    decision = finalize_ranking(RECALL, failure, top_n=3, min_score=0.5, model="m")
    assert [c.index for c in decision.ranked] == [0, 1, 2]
    assert [c.final_score for c in decision.ranked] == [0.9, 0.8, 0.7]
    assert all(c.rerank_score is None for c in decision.ranked)
    assert decision.outcome.status is status
    assert decision.outcome.reason == "hub down"
    assert decision.outcome.dropped_by_cutoff == 0
    assert decision.outcome.min_score is None  # no cutoff was applied


def test_a_rejected_request_is_a_failure_too() -> None:
    error = UpstreamRejected("401", code=RerankErrorCode.REJECTED, status=401)
    assert failure_from_error(error).status is RerankStatus.FAILED


def test_fail_closed_raises_for_the_api_503() -> None:
    error = UpstreamUnavailable("timed out", code=RerankErrorCode.TIMEOUT)
    with pytest.raises(UpstreamUnavailable, match="timeout") as info:
        finalize_ranking(RECALL, failure_from_error(error), on_error=OnRerankError.FAIL)
    assert info.value.code == RerankErrorCode.TIMEOUT
    assert info.value.__cause__ is error


def test_fail_closed_without_an_error_object() -> None:
    failure = RerankFailure(RerankStatus.FAILED, "no scores")
    with pytest.raises(UpstreamUnavailable):
        finalize_ranking(RECALL, failure, on_error=OnRerankError.FAIL)


def test_skipped_when_off_or_no_candidates() -> None:
    off = finalize_ranking(RECALL, None, top_n=2)
    assert off.outcome.status is RerankStatus.SKIPPED
    assert off.outcome.reason == "reranking is off"
    assert [c.index for c in off.ranked] == [0, 1]
    empty = finalize_ranking([], [], on_error=OnRerankError.FAIL)
    assert empty.outcome.status is RerankStatus.SKIPPED
    assert empty.outcome.reason == "no candidates to rerank"
    assert empty.ranked == ()


def test_select_maps_back_to_the_callers_candidates() -> None:
    hits = ["a", "b", "c", "d", "e"]
    assert finalize_ranking(RECALL, RERANK, top_n=3).select(hits) == ["b", "d", "e"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"top_n": 0}, "top_n"),
        ({"min_score": 1.5}, "min_score"),
        ({"min_score": -0.1}, "min_score"),
    ],
)
def test_bad_parameters_are_invalid_input(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        finalize_ranking(RECALL, RERANK, **kwargs)


def test_more_scores_than_candidates_is_refused() -> None:
    with pytest.raises(InvalidInput, match="6 rerank scores for 5"):
        finalize_ranking(RECALL, [0.1] * 6)


@pytest.mark.parametrize("policy", list(ScorePolicy))
def test_candidates_past_the_depth_follow_in_recall_order(policy: ScorePolicy) -> None:
    # Only the first 3 were sent: the last two stay 4th and 5th, whatever the policy.
    decision = finalize_ranking(RECALL, [0.1, 0.9, 0.5], policy=policy)
    assert [c.index for c in decision.ranked][3:] == [3, 4]
    assert sorted(c.index for c in decision.ranked[:3]) == [0, 1, 2]
    assert decision.ranked[3].rerank_score is None


def test_fusion_params_are_checked() -> None:
    with pytest.raises(InvalidInput):
        FusionParams(k=0)


@pytest.mark.parametrize(
    ("request_value", "collection", "model_default", "expected"),
    [
        (0.7, 0.5, 0.3, 0.7),
        (None, 0.5, 0.3, 0.5),
        (None, None, 0.3, 0.3),
        (None, None, None, None),
        (0.0, 0.5, 0.3, 0.0),  # an explicit 0 from the request turns the cutoff off
    ],
)
def test_min_score_precedence(
    request_value: float | None,
    collection: float | None,
    model_default: float | None,
    expected: float | None,
) -> None:
    assert resolve_min_score(request_value, collection, model_default) == expected


def test_resolve_min_score_refuses_out_of_range() -> None:
    with pytest.raises(InvalidInput, match="collection"):
        resolve_min_score(None, 2.0, 0.3)


# --- the window policy (the default) ---------------------------------------------------

TEN = [1.0 - i / 10 for i in range(10)]


@pytest.mark.parametrize("window", [1, 2, 3, 5, 10])
def test_window_keeps_every_candidate_within_its_window(window: int) -> None:
    # The reranker loves the recall order backwards: the worst case for the first stage.
    backwards = [i / 10 for i in range(10)]
    decision = finalize_ranking(
        TEN, backwards, top_n=10, policy=ScorePolicy.WINDOW,
        fusion=FusionParams(recall_weight=0.0, rerank_weight=1.0, window=window),
    )  # fmt: skip
    order = [c.index for c in decision.ranked]
    for position, index in enumerate(order):
        assert position // window == index // window
    # Inside each window it follows the reranker (here: reversed).
    assert order[:window] == list(range(window))[::-1]


def test_window_of_one_is_the_recall_order_and_reports_the_scores() -> None:
    decision = finalize_ranking(
        TEN, [0.9] * 10, top_n=10, policy=ScorePolicy.WINDOW, fusion=FusionParams(window=1)
    )
    assert [c.index for c in decision.ranked] == list(range(10))
    assert all(c.rerank_score == 0.9 for c in decision.ranked)


def test_window_orders_by_fusion_inside_a_window() -> None:
    decision = finalize_ranking(
        RECALL, RERANK, policy=ScorePolicy.WINDOW,
        fusion=FusionParams(recall_weight=1.0, rerank_weight=1.0, k=1.0, window=5),
    )  # fmt: skip
    fused = finalize_ranking(
        RECALL, RERANK, policy=ScorePolicy.FUSION,
        fusion=FusionParams(recall_weight=1.0, rerank_weight=1.0, k=1.0),
    )  # fmt: skip
    assert [c.index for c in decision.ranked] == [c.index for c in fused.ranked]


def test_the_library_default_is_the_settings_default() -> None:
    from core.settings import RerankSettings  # noqa: PLC0415

    settings = RerankSettings()
    params = FusionParams()
    assert ScorePolicy(settings.final) is DEFAULT_POLICY
    assert (params.recall_weight, params.rerank_weight, params.k, params.window) == (
        settings.fusion_recall_weight,
        settings.fusion_rerank_weight,
        settings.fusion_k,
        settings.window,
    )


def test_window_size_is_checked() -> None:
    with pytest.raises(InvalidInput, match="window"):
        FusionParams(window=0)


# --- autocut (Weaviate's semantics) --------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "jumps", "kept"),
    [
        ([0.99, 0.98, 0.97, 0.50, 0.49, 0.48], 1, 3),
        ([0.90, 0.20, 0.19, 0.18], 1, 1),
        ([0.9, 0.8, 0.7, 0.6, 0.5], 1, 5),  # a straight line has no jump
        ([1.0, 1.0, 1.0], 1, 3),  # all equal: nothing to cut
        ([0.9, 0.89, 0.5, 0.49, 0.1, 0.09], 1, 2),
        ([0.9, 0.89, 0.5, 0.49, 0.1, 0.09], 2, 4),
        ([0.9, 0.1], 1, 2),
        ([0.9], 1, 1),
        ([], 1, 0),
    ],
)
def test_autocut_cuts_at_the_nth_jump(scores: list[float], jumps: int, kept: int) -> None:
    assert autocut(scores, jumps) == kept


def test_autocut_applies_to_the_final_order_and_is_reported() -> None:
    recall = [0.9, 0.8, 0.7, 0.6, 0.5]
    rerank = [0.99, 0.98, 0.97, 0.05, 0.04]
    decision = finalize_ranking(recall, rerank, autocut_jumps=1)
    assert [c.index for c in decision.ranked] == [0, 1, 2]
    assert (decision.outcome.dropped_by_autocut, decision.outcome.autocut) == (2, 1)
    plain = finalize_ranking(recall, None, autocut_jumps=None)
    assert len(plain.ranked) == 5
