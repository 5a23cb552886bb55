"""Greedy, order-keeping batching under two caps: how many items, and how much of a size.

One rule serves every place Sieve groups work: embedding requests (texts by tokens), worker
tasks (documents by bytes), rerank requests (documents by images) and CLI uploads (files by
bytes).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["bounded_batches"]


def bounded_batches(sizes: Sequence[int], *, max_count: int, max_total: int) -> list[range]:
    """Split positions ``0..len(sizes)`` into consecutive runs of at most ``max_count``
    items whose sizes add up to at most ``max_total``.

    An item larger than ``max_total`` on its own still gets a run of one (the receiver
    decides whether it fits).

    Raises:
        ValueError: a cap below 1.
    """
    if max_count < 1 or max_total < 1:
        raise ValueError("max_count and max_total must be positive")
    runs: list[range] = []
    start, used = 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start >= max_count or used + size > max_total):
            runs.append(range(start, i))
            start, used = i, 0
        used += size
    if start < len(sizes):
        runs.append(range(start, len(sizes)))
    return runs
