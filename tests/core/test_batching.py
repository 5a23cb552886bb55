"""The one batching rule behind embedding requests, worker tasks, rerank requests, uploads."""

from __future__ import annotations

import pytest

from core.batching import bounded_batches


def test_runs_keep_order_and_respect_both_caps() -> None:
    runs = bounded_batches([100, 100, 100, 500, 10, 10], max_count=3, max_total=250)
    assert [list(r) for r in runs] == [[0, 1], [2], [3], [4, 5]]
    assert [list(r) for r in bounded_batches([1] * 7, max_count=3, max_total=99)] == [
        [0, 1, 2],
        [3, 4, 5],
        [6],
    ]


def test_an_oversized_item_travels_alone_and_nothing_is_lost() -> None:
    sizes = [5, 900, 5, 0, 0]
    runs = bounded_batches(sizes, max_count=10, max_total=100)
    assert [list(r) for r in runs] == [[0], [1], [2, 3, 4]]
    assert [i for r in runs for i in r] == list(range(len(sizes)))
    assert bounded_batches([], max_count=1, max_total=1) == []


def test_caps_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        bounded_batches([1], max_count=0, max_total=1)
    with pytest.raises(ValueError, match="positive"):
        bounded_batches([1], max_count=1, max_total=0)
