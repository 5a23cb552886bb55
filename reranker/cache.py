"""A bounded in-process cache of rerank scores, keyed by model, query and chunk content.

A chunk's score against a query depends only on the model and the text sent, so repeated
queries (a chat that re-asks, a dashboard, ``sieve tune`` re-runs) skip the cross-encoder
for the chunks they have already scored. LRU, bounded by entries; no I/O, no clock.
Scores are stored on the [0, 1] scale the client returns.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

__all__ = ["RerankScoreCache", "score_key"]

ScoreKey = tuple[str, str, str]


def score_key(model: str, query: str, text: str) -> ScoreKey:
    """The cache key of one (query, document text) pair under ``model``."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
    return (model, query, digest)


class RerankScoreCache:
    """Least-recently-used map of pair keys to scores, holding at most ``size`` entries."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("the cache size must be >= 0")
        self._size = size
        self._scores: OrderedDict[ScoreKey, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._scores)

    @property
    def size(self) -> int:
        """The most entries it holds (0: caching is off)."""
        return self._size

    def lookup(self, keys: Sequence[ScoreKey]) -> list[float | None]:
        """The cached score for each key (None for a miss); hits become most recent."""
        out: list[float | None] = []
        for key in keys:
            score = self._scores.get(key)
            if score is not None:
                self._scores.move_to_end(key)
            out.append(score)
        return out

    def store(self, keys: Sequence[ScoreKey], scores: Sequence[float | None]) -> None:
        """Remember scored pairs (None is not stored), evicting the least recent."""
        if self._size == 0:
            return
        for key, score in zip(keys, scores, strict=True):
            if score is None:
                continue
            self._scores[key] = score
            self._scores.move_to_end(key)
        while len(self._scores) > self._size:
            self._scores.popitem(last=False)
