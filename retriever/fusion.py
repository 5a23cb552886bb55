"""Weighted reciprocal rank fusion of the dense and sparse recall legs (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.types import FusionWeights, LateFusion, LegScores, QueryMode, ScoredHit
from retriever.layout import trusted

__all__ = ["FusedHit", "LegHit", "fuse_late", "fuse_legs", "rank_leg", "tie_score"]

LegHit = tuple[str, float]
"""One leg's hit: (point id, the engine's raw score)."""


@dataclass(frozen=True, slots=True)
class FusedHit:
    """A point id with its final recall score and every leg's score and rank."""

    id: str
    score: float
    scores: LegScores


def tie_score(score: float) -> float:
    """A leg's sort key for a raw score: higher first, equal to 6 significant digits ties.

    Engines score in float32 and sum terms in no fixed order (Edge's sparse scores for
    equal documents differ in the last bit from run to run), so scores equal to 6
    significant digits count as tied, and ties go by id.
    """
    return -float(f"{score:.6g}")


def _tie_key(hit: LegHit) -> tuple[float, str]:
    return (tie_score(hit[1]), hit[0])


_NO_LEGS: dict[str, float | int | None] = dict.fromkeys(LegScores.model_fields)


def _legs(
    *,
    dense: float | None = None,
    dense_rank: int | None = None,
    sparse: float | None = None,
    sparse_rank: int | None = None,
    fused: float | None = None,
) -> LegScores:
    return trusted(
        LegScores,
        {
            "dense": dense,
            "dense_rank": dense_rank,
            "sparse": sparse,
            "sparse_rank": sparse_rank,
            "fused": fused,
            "late": None,
        },
    )


def rank_leg(hits: Sequence[LegHit]) -> list[LegHit]:
    """Order one leg's hits by score, ties by id, so every engine yields the same ranks."""
    return sorted(hits, key=_tie_key)


def fuse_legs(
    mode: QueryMode,
    dense: Sequence[LegHit],
    sparse: Sequence[LegHit],
    *,
    weights: FusionWeights,
    k: float,
    limit: int,
) -> list[FusedHit]:
    """Fuse the legs: score(doc) = sum over legs of w_leg / (k + rank_leg), rank 1-based.

    In hybrid mode the result is ordered by fused score, then by the best rank in any leg,
    then by id. A single-leg mode keeps that leg's order and its raw score as the score
    (``fused`` stays None: nothing was fused).
    """
    dense_ranked = rank_leg(dense)
    sparse_ranked = rank_leg(sparse)
    if mode is QueryMode.DENSE:
        return [
            FusedHit(
                id=pid,
                score=score,
                scores=trusted(LegScores, {**_NO_LEGS, "dense": score, "dense_rank": rank}),
            )
            for rank, (pid, score) in enumerate(dense_ranked[:limit], start=1)
        ]
    if mode is QueryMode.SPARSE:
        return [
            FusedHit(
                id=pid,
                score=score,
                scores=trusted(LegScores, {**_NO_LEGS, "sparse": score, "sparse_rank": rank}),
            )
            for rank, (pid, score) in enumerate(sparse_ranked[:limit], start=1)
        ]
    return _rrf(dense_ranked, sparse_ranked, weights=weights, k=k, limit=limit)


@dataclass(slots=True)
class _Row:
    dense: float | None = None
    dense_rank: int | None = None
    sparse: float | None = None
    sparse_rank: int | None = None
    fused: float = 0.0

    def sort_key(self, pid: str) -> tuple[float, int, str]:
        ranks = [r for r in (self.dense_rank, self.sparse_rank) if r is not None]
        return (-self.fused, min(ranks), pid)


def _rrf(
    dense: list[LegHit],
    sparse: list[LegHit],
    *,
    weights: FusionWeights,
    k: float,
    limit: int,
) -> list[FusedHit]:
    rows: dict[str, _Row] = {}
    for rank, (pid, score) in enumerate(dense, start=1):
        rows[pid] = _Row(dense=score, dense_rank=rank, fused=weights.dense / (k + rank))
    for rank, (pid, score) in enumerate(sparse, start=1):
        row = rows.setdefault(pid, _Row())
        row.sparse, row.sparse_rank = score, rank
        row.fused += weights.sparse / (k + rank)
    ordered = sorted(rows.items(), key=lambda item: item[1].sort_key(item[0]))
    return [
        FusedHit(
            id=pid,
            score=row.fused,
            scores=_legs(
                dense=row.dense,
                dense_rank=row.dense_rank,
                sparse=row.sparse,
                sparse_rank=row.sparse_rank,
                fused=row.fused,
            ),
        )
        for pid, row in ordered[:limit]
    ]


def late_order(
    ids: Sequence[str], late: Mapping[str, float], fusion: LateFusion
) -> list[tuple[int, float]]:
    """The late-fused order of ids given in recall order: (recall index, score), best first.

    score = w_recall/(k + r_recall) + w_late/(k + r_late); an id without a MaxSim score gets
    no late term; ties go by recall rank. With ``fusion.late == 0`` the recall order is
    kept (the score is then the recall term alone). ``sieve tune`` ranks with this too.
    """
    scored = [(pid, late[pid]) for pid in ids if pid in late]
    late_rank = {pid: rank for rank, (pid, _) in enumerate(rank_leg(scored), start=1)}
    k = fusion.k
    rows: list[tuple[float, int]] = []
    for index, pid in enumerate(ids):
        final = fusion.recall / (k + index + 1)
        if pid in late_rank:
            final += fusion.late / (k + late_rank[pid])
        rows.append((final, index))
    if fusion.late:
        rows.sort(key=lambda row: (-row[0], row[1]))
    return [(index, final) for final, index in rows]


def fuse_late(
    hits: Sequence[ScoredHit], late: Mapping[str, float], fusion: LateFusion
) -> list[ScoredHit]:
    """Join the MaxSim rank to the recall rank (``late_order``).

    ``hits`` come in recall order; ``late`` maps ids to MaxSim scores (a hit the engine did
    not rescore gets no late term). Every hit keeps its recall scores and gains
    ``scores.late``. With ``fusion.late == 0`` the recall order and scores are kept as they
    are.
    """
    out: list[ScoredHit] = []
    for index, final in late_order([h.id for h in hits], late, fusion):
        hit = hits[index]
        scores = trusted(LegScores, {**hit.scores.__dict__, "late": late.get(hit.id)})
        score = final if fusion.late else hit.score
        out.append(
            trusted(
                ScoredHit, {"id": hit.id, "score": score, "scores": scores, "payload": hit.payload}
            )
        )
    return out
