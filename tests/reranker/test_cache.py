"""The rerank score cache: keyed by model, query and text; bounded; least recent out first."""

from __future__ import annotations

import pytest

from reranker.cache import RerankScoreCache, score_key


def test_key_depends_on_model_query_and_text() -> None:
    base = score_key("m", "q", "text")
    assert score_key("m", "q", "text") == base
    assert len({base, score_key("m2", "q", "text"), score_key("m", "q2", "text"),
                score_key("m", "q", "text!")}) == 4  # fmt: skip


def test_lookup_returns_stored_scores_and_misses() -> None:
    cache = RerankScoreCache(10)
    keys = [score_key("m", "q", t) for t in ("a", "b", "c")]
    cache.store(keys[:2], [0.9, None])
    assert cache.lookup(keys) == [0.9, None, None]
    assert len(cache) == 1  # None is never stored


def test_least_recently_used_is_evicted() -> None:
    cache = RerankScoreCache(2)
    a, b, c = (score_key("m", "q", t) for t in "abc")
    cache.store([a, b], [0.1, 0.2])
    cache.lookup([a])  # a is now the most recent
    cache.store([c], [0.3])
    assert cache.lookup([a, b, c]) == [0.1, None, 0.3]
    assert len(cache) == 2


def test_size_zero_caches_nothing() -> None:
    cache = RerankScoreCache(0)
    key = score_key("m", "q", "a")
    cache.store([key], [0.5])
    assert cache.lookup([key]) == [None]


def test_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        RerankScoreCache(-1)
