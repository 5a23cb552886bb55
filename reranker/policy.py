"""The rerank stage's decision, pure: cutoff, top_n, final score, and degradation on failure.

Generic over the caller's candidates: it works on recall positions and returns an
ordering plus every stage's score; :meth:`RerankDecision.select` maps back to the hits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from core.errors import InvalidInput, SieveError, UpstreamUnavailable
from reranker.codes import RerankErrorCode

__all__ = [
    "DEFAULT_TOP_N",
    "FusionParams",
    "OnRerankError",
    "RankedCandidate",
    "RerankDecision",
    "RerankFailure",
    "RerankOutcome",
    "RerankStatus",
    "ScorePolicy",
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
    """How the final score is made: the reranker's alone, or fused with the recall rank."""

    RERANK = "rerank"
    FUSION = "fusion"


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

    recall_weight: float = 1.0
    rerank_weight: float = 1.0
    k: float = 10.0

    def __post_init__(self) -> None:
        if self.recall_weight < 0 or self.rerank_weight < 0 or self.k <= 0:
            raise InvalidInput("fusion weights must be >= 0 and k > 0")


@dataclass(frozen=True, slots=True)
class RerankOutcome:
    """The rerank stage's report: status, why, which model, and what the cutoff removed."""

    status: RerankStatus
    reason: str | None
    model: str | None
    candidates: int
    dropped_by_cutoff: int = 0
    min_score: float | None = None


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


def finalize_ranking(
    recall_scores: Sequence[float],
    rerank: Sequence[float | None] | RerankFailure | None,
    *,
    top_n: int = DEFAULT_TOP_N,
    min_score: float | None = None,
    policy: ScorePolicy = ScorePolicy.RERANK,
    fusion: FusionParams | None = None,
    on_error: OnRerankError = OnRerankError.OPEN,
    model: str | None = None,
    skip_reason: str = "reranking is off",
) -> RerankDecision:
    """Apply ``min_score`` to the rerank scores, order by the policy, then cut to ``top_n``.

    ``recall_scores`` are the candidates' recall scores in recall order. ``rerank`` is the
    [0, 1] score per candidate (None for one the peer did not score), a failure, or None
    when reranking was not asked for. An empty result is a valid answer.

    Raises:
        InvalidInput: ``top_n`` < 1, ``min_score`` outside [0, 1], or scores that do not
            match the candidates.
        UpstreamUnavailable: the rerank failed and ``on_error`` is ``fail`` (the API's 503).
    """
    if top_n < 1:
        raise InvalidInput(f"top_n must be at least 1, got {top_n}")
    _check_score(min_score, "the")
    candidates = len(recall_scores)
    if candidates == 0 or rerank is None:
        reason = "no candidates to rerank" if candidates == 0 else skip_reason
        outcome = RerankOutcome(RerankStatus.SKIPPED, reason, model, candidates)
        return RerankDecision(_recall_order(recall_scores, top_n), outcome)
    if isinstance(rerank, RerankFailure):
        if on_error is OnRerankError.FAIL:
            code = rerank.error.code if rerank.error else RerankErrorCode.UNAVAILABLE.value
            raise UpstreamUnavailable(
                f"reranking {rerank.status.value}: {rerank.reason}", code=code
            ) from rerank.error
        outcome = RerankOutcome(rerank.status, rerank.reason, model, candidates)
        return RerankDecision(_recall_order(recall_scores, top_n), outcome)
    if len(rerank) != candidates:
        raise InvalidInput(f"{len(rerank)} rerank scores for {candidates} candidates")

    ranks = _rerank_ranks(rerank)
    kept = [
        i
        for i in range(candidates)
        if min_score is None or ((score := rerank[i]) is not None and score >= min_score)
    ]
    params = fusion or FusionParams()

    def final(i: int) -> float:
        if policy is ScorePolicy.FUSION:
            fused = params.recall_weight / (params.k + i + 1)
            if i in ranks:
                fused += params.rerank_weight / (params.k + ranks[i])
            return fused
        score = rerank[i]
        return score if score is not None else 0.0

    # Unscored candidates (a peer that cut to its own top_n) sort after scored ones.
    kept.sort(key=lambda i: (i not in ranks and policy is ScorePolicy.RERANK, -final(i), i))
    ranked = tuple(
        RankedCandidate(
            index=i,
            recall_rank=i + 1,
            recall_score=recall_scores[i],
            rerank_score=rerank[i],
            rerank_rank=ranks.get(i),
            final_score=final(i),
        )
        for i in kept[:top_n]
    )
    outcome = RerankOutcome(
        RerankStatus.OK, None, model, candidates, candidates - len(kept), min_score
    )
    return RerankDecision(ranked, outcome)
