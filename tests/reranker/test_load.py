"""Load shedding: the depth shrinks to what fits the budget, never below min_depth."""

from __future__ import annotations

import pytest

from reranker.load import RerankLoad


def test_without_a_measured_cost_everything_is_sent() -> None:
    load = RerankLoad(budget_ms=1000, min_depth=5)
    assert load.allowed_pairs(50) == 50


def test_an_idle_peer_within_budget_gets_the_full_depth() -> None:
    load = RerankLoad(budget_ms=1000, min_depth=5)
    ahead = load.start(10)
    load.finish(10, ahead, 200.0, sample=True)  # 20 ms a pair
    assert load.ms_per_pair == pytest.approx(20.0)
    assert load.allowed_pairs(50) == 50  # 50 x 20 ms = the budget


def test_pairs_in_flight_shrink_the_depth_and_the_reason_says_why() -> None:
    load = RerankLoad(budget_ms=1000, min_depth=5)
    ahead = load.start(10)
    load.finish(10, ahead, 400.0, sample=True)  # 40 ms a pair: 25 fit the budget
    others = [load.start(10) for _ in range(2)]  # 20 pairs already queued
    assert others == [0, 10]
    assert load.allowed_pairs(50) == 5  # 25 - 20 = 5
    assert "2 rerank calls with 20 pairs in flight" in load.describe()
    load.start(40)
    assert load.allowed_pairs(50) == 5  # never below min_depth
    assert load.allowed_pairs(3) == 3  # at or under min_depth: untouched


def test_cost_is_an_exponential_mean_and_only_samples_teach_it() -> None:
    load = RerankLoad(budget_ms=1000, min_depth=1, smoothing=0.5)
    load.finish(10, load.start(10), 100.0, sample=True)
    load.finish(10, load.start(10), 300.0, sample=True)
    assert load.ms_per_pair == pytest.approx(20.0)  # 10 then 30: halfway
    load.finish(10, load.start(10), 1.0, sample=False)  # a refused call teaches nothing
    assert load.ms_per_pair == pytest.approx(20.0)
    assert (load.in_flight_calls, load.in_flight_pairs) == (0, 0)


def test_queueing_ahead_is_not_charged_to_the_pair_cost() -> None:
    load = RerankLoad(budget_ms=1000, min_depth=1)
    first = load.start(10)
    second = load.start(10)
    load.finish(10, second, 400.0, sample=True)  # waited behind 10 pairs: 20 ms a pair
    load.finish(10, first, 200.0, sample=True)
    assert load.ms_per_pair == pytest.approx(20.0)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="budget_ms"):
        RerankLoad(budget_ms=0, min_depth=1)
