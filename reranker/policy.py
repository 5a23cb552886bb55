"""The rerank stage's decision, pure: cutoff, top_n, final score, and degradation on failure.

Generic over the caller's candidates: it works on recall positions and returns an
ordering plus every stage's score; :meth:`RerankDecision.select` maps back to the hits.

The default final policy is ``window``: the reranker may reorder candidates only within
consecutive windows of the recall order (ordered there by weighted RRF of both ranks), so
the set of the first ``w`` results is always recall's own. Whatever the reranker thinks,
a document moves at most ``w - 1`` places. Untuned, ``w`` is 1: the final order is
recall's, the reranker's scores serve the cutoff and the answer, and ``sieve tune`` widens
the window on held-out evidence (core/defaults.py has the rule; the README's evaluation
section the numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TypeVar

from core.defaults import (
    DEFAULT_FUSION_K,
    DEFAULT_POLICY_NAME,
    DEFAULT_RECALL_WEIGHT,
    DEFAULT_RERANK_WEIGHT,
    DEFAULT_WINDOW,
)
from core.errors import InvalidInput, SieveError, UpstreamUnavailable
from reranker.codes import RerankErrorCode

__all__ = [
    "DEFAULT_FUSION_K",
    "DEFAULT_POLICY",
    "DEFAULT_RECALL_WEIGHT",
    "DEFAULT_RERANK_WEIGHT",
    "DEFAULT_TOP_N",
    "DEFAULT_WINDOW",
    "FusionParams",
    "OnRerankError",
    "RankedCandidate",
    "RerankDecision",
    "RerankFailure",
    "RerankOutcome",
    "RerankStatus",
    "ScorePolicy",
    "autocut",
    "failure_from_error",
    "finalize_ranking",
    "resolve_min_score",
]

T = TypeVar("T")

DEFAULT_TOP_N = 10


class RerankStatus(StrEnum):
    """What happened in the rerank stage; reported as ``rerank.status``."""

    OK = "ok"
    SKIPPED = "skipped"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CIRCUIT_OPEN = "circuit_open"


class ScorePolicy(StrEnum):
    """How the final order is made from the recall rank and the rerank score.

    ``rerank``: the reranker's score alone. ``fusion``: weighted RRF of both ranks.
    ``window``: fusion, but only within consecutive windows of the recall order.
    """

    RERANK = "rerank"
    FUSION = "fusion"
    WINDOW = "window"


DEFAULT_POLICY = ScorePolicy(DEFAULT_POLICY_NAME)


class OnRerankError(StrEnum):
    """Fail open (recall order, status set) or fail closed (the API answers 503)."""

    OPEN = "open"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class FusionParams:
    """Weighted reciprocal rank fusion of the recall rank and the rerank rank.

    A small cross-encoder can lose to strong hybrid recall on some corpora; fusing both
    ranks keeps recall's signal (architecture.md, "Query semantics").
    """

    recall_weight: float = DEFAULT_RECALL_WEIGHT
    rerank_weight: float = DEFAULT_RERANK_WEIGHT
    k: float = DEFAULT_FUSION_K
    window: int = DEFAULT_WINDOW

    def __post_init__(self) -> None:
        if self.recall_weight < 0 or self.rerank_weight < 0 or self.k <= 0:
            raise InvalidInput("fusion weights must be >= 0 and k > 0")
        if self.window < 1:
            raise InvalidInput("the rerank window must be at least 1")


@dataclass(frozen=True, slots=True)
class RerankOutcome:
    """The rerank stage's report: status, why, which model, and what the cutoff removed."""

    status: RerankStatus
    reason: str | None
    model: str | None
    candidates: int
    dropped_by_cutoff: int = 0
    min_score: float | None = None
    dropped_by_autocut: int = 0
    autocut: int | None = None


@dataclass(frozen=True, slots=True)
class RankedCandidate:
    """One kept candidate: its recall position (``index``, 0-based) and every stage's score."""

    index: int
    recall_rank: int
    recall_score: float
    rerank_score: float | None
    rerank_rank: int | None
    final_score: float


@dataclass(frozen=True, slots=True)
class RerankDecision:
    """The final order (already cut to ``top_n``) and the stage's outcome."""

    ranked: tuple[RankedCandidate, ...]
    outcome: RerankOutcome

    def select(self, candidates: Sequence[T]) -> list[T]:
        """Return the caller's candidates (in recall order) in the final order."""
        return [candidates[item.index] for item in self.ranked]


@dataclass(frozen=True, slots=True)
class RerankFailure:
    """A rerank call that did not produce scores, and why."""

    status: RerankStatus
    reason: str
    error: SieveError | None = None


_STATUS_BY_CODE = {
    RerankErrorCode.TIMEOUT.value: RerankStatus.TIMEOUT,
    RerankErrorCode.CIRCUIT_OPEN.value: RerankStatus.CIRCUIT_OPEN,
}


def failure_from_error(error: SieveError) -> RerankFailure:
    """Turn the error a rerank client raised into a failure with the matching status."""
    status = _STATUS_BY_CODE.get(error.code, RerankStatus.FAILED)
    return RerankFailure(status=status, reason=error.message, error=error)


def _check_score(value: float | None, what: str) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise InvalidInput(f"{what} min_score must be within [0, 1], got {value}")
    return value


def resolve_min_score(
    request: float | None, collection: float | None, model_default: float | None
) -> float | None:
    """The cutoff in force: the request's, else the collection's, else the model's default.

    Raises:
        InvalidInput: when the chosen value is outside [0, 1].
    """
    for value, what in ((request, "request"), (collection, "collection"), (model_default, "model")):
        if value is not None:
            return _check_score(value, what)
    return None


def _recall_order(recall_scores: Sequence[float], top_n: int) -> tuple[RankedCandidate, ...]:
    return tuple(
        RankedCandidate(
            index=i,
            recall_rank=i + 1,
            recall_score=score,
            rerank_score=None,
            rerank_rank=None,
            final_score=score,
        )
        for i, score in enumerate(recall_scores[:top_n])
    )


def _rerank_ranks(scores: Sequence[float | None]) -> dict[int, int]:
    scored = [i for i, s in enumerate(scores) if s is not None]
    # Ties go to the better recall rank (lower position): a stable, explainable order.
    scored.sort(key=lambda i: (-(scores[i] or 0.0), i))
    return {i: rank for rank, i in enumerate(scored, start=1)}


def autocut(scores: Sequence[float], jumps: int) -> int:
    """How many of ``scores`` (in result order) to keep: cut before the ``jumps``-th jump.

    Weaviate's ``autocut``: scores are normalised onto [0, 1] from the first to the last,
    compared with the straight line between them, and each local maximum of the difference
    is a jump. ``jumps`` < 1, fewer than 2 scores, or all scores equal keep everything.
    """
    n = len(scores)
    if jumps < 1 or n <= 1 or scores[-1] == scores[0]:
        return n
    span = scores[-1] - scores[0]
    diff = [(y - scores[0]) / span - i / (n - 1) for i, y in enumerate(scores)]
    found = 0
    for i in range(1, n):
        if i == n - 1:
            peak = i >= 2 and diff[i] > diff[i - 1] and diff[i] > diff[i - 2]
        else:
            peak = diff[i] > diff[i - 1] and diff[i] > diff[i + 1]
        if peak:
            found += 1
            if found >= jumps:
                return i
    return n


def finalize_ranking(
    recall_scores: Sequence[float],
    rerank: Sequence[float | None] | RerankFailure | None,
    *,
    top_n: int = DEFAULT_TOP_N,
    min_score: float | None = None,
    policy: ScorePolicy = DEFAULT_POLICY,
    fusion: FusionParams | None = None,
    on_error: OnRerankError = OnRerankError.OPEN,
    model: str | None = None,
    skip_reason: str = "reranking is off",
    autocut_jumps: int | None = None,
) -> RerankDecision:
    """Apply ``min_score`` to the rerank scores, order by the policy, then cut to ``top_n``.

    ``recall_scores`` are the candidates' recall scores in recall order. ``rerank`` is the
    [0, 1] score per candidate (None for one the peer did not score), a failure, or None
    when reranking was not asked for. It may be shorter than the candidates: only the
    first ``len(rerank)`` were sent (the rerank depth); the rest keep their recall order
    after them. With ``autocut_jumps`` the result is cut at that many score jumps of the
    final scores (:func:`autocut`), after ``top_n``. An empty result is a valid answer.

    Raises:
        InvalidInput: ``top_n`` < 1, ``min_score`` outside [0, 1], or more scores than
            candidates.
        UpstreamUnavailable: the rerank failed and ``on_error`` is ``fail`` (the API's 503).
    """
    if top_n < 1:
        raise InvalidInput(f"top_n must be at least 1, got {top_n}")
    _check_score(min_score, "the")
    candidates = len(recall_scores)
    if candidates == 0 or rerank is None:
        reason = "no candidates to rerank" if candidates == 0 else skip_reason
        outcome = RerankOutcome(RerankStatus.SKIPPED, reason, model, candidates)
        return _cut(_recall_order(recall_scores, top_n), outcome, autocut_jumps)
    if isinstance(rerank, RerankFailure):
        if on_error is OnRerankError.FAIL:
            code = rerank.error.code if rerank.error else RerankErrorCode.UNAVAILABLE.value
            raise UpstreamUnavailable(
                f"reranking {rerank.status.value}: {rerank.reason}", code=code
            ) from rerank.error
        outcome = RerankOutcome(rerank.status, rerank.reason, model, candidates)
        return _cut(_recall_order(recall_scores, top_n), outcome, autocut_jumps)
    if len(rerank) > candidates:
        raise InvalidInput(f"{len(rerank)} rerank scores for {candidates} candidates")
    depth = len(rerank)
    scores = list(rerank) + [None] * (candidates - depth)
    ranks = _rerank_ranks(scores)
    kept = [
        i
        for i in range(candidates)
        if min_score is None or ((score := scores[i]) is not None and score >= min_score)
    ]
    params = fusion or FusionParams()
    keys = _order_keys(scores, ranks, depth, policy, params)
    kept.sort(key=lambda i: keys[i][0])
    ranked = tuple(
        RankedCandidate(
            index=i,
            recall_rank=i + 1,
            recall_score=recall_scores[i],
            rerank_score=scores[i],
            rerank_rank=ranks.get(i),
            final_score=keys[i][1],
        )
        for i in kept[:top_n]
    )
    outcome = RerankOutcome(
        RerankStatus.OK, None, model, candidates, candidates - len(kept), min_score
    )
    return _cut(ranked, outcome, autocut_jumps)


def _order_keys(
    scores: Sequence[float | None],
    ranks: dict[int, int],
    depth: int,
    policy: ScorePolicy,
    params: FusionParams,
) -> list[tuple[tuple[float, ...], float]]:
    """Per candidate: (sort key, final score). Candidates past ``depth`` follow in recall order."""
    keys: list[tuple[tuple[float, ...], float]] = []
    for i, score in enumerate(scores):
        fused = params.recall_weight / (params.k + i + 1)
        if i in ranks:
            fused += params.rerank_weight / (params.k + ranks[i])
        if i >= depth:
            # Not sent to /rerank: after every sent candidate, in recall order.
            keys.append(((1.0, 0.0, float(i)), fused))
        elif policy is ScorePolicy.RERANK:
            # Unscored candidates (a peer that cut to its own top_n) sort after scored ones.
            value = score if score is not None else 0.0
            keys.append(((0.0, float(score is None), -value, float(i)), value))
        elif policy is ScorePolicy.WINDOW:
            keys.append(((0.0, float(i // params.window), -fused, float(i)), fused))
        else:
            keys.append(((0.0, 0.0, -fused, float(i)), fused))
    return keys


def _cut(
    ranked: tuple[RankedCandidate, ...], outcome: RerankOutcome, jumps: int | None
) -> RerankDecision:
    if jumps is None or jumps < 1:
        return RerankDecision(ranked, outcome)
    keep = autocut([c.final_score for c in ranked], jumps)
    return RerankDecision(
        ranked[:keep],
        replace(outcome, dropped_by_autocut=len(ranked) - keep, autocut=jumps),
    )
