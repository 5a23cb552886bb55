"""The Edge store's query fast path (UUID ids) gives exactly what ``fuse_legs`` gives."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from core.types import FusionWeights, HybridQuery, QueryMode, SparseVec
from retriever import edge_store
from retriever.layout import payload_to_stored
from tests.retriever.corpus import chunk


@dataclass
class _Point:  # what the fast path reads of an ``edge.ScoredPoint``
    id: Any
    score: float
    payload: dict[str, Any]


def _leg(rng: random.Random, ids: list[uuid.UUID], size: int) -> list[_Point]:
    # Few distinct scores, some equal only to 6 significant digits: many ties to break.
    base = [rng.choice([0.5, 0.25, 2.5407399, 2.5407401, 1.0]) for _ in range(size)]
    return [
        _Point(pid, score, payload_to_stored(chunk(str(pid), 0, "text", [0.0]).payload))
        for pid, score in zip(rng.sample(ids, size), base, strict=True)
    ]


def _dump(hits: list[Any]) -> list[tuple[Any, ...]]:
    return [(h.id, h.score, h.scores.model_dump(), h.payload.model_dump()) for h in hits]


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("mode", list(QueryMode))
def test_fast_path_matches_fuse_legs(seed: int, mode: QueryMode) -> None:
    rng = random.Random(seed)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(30)]
    dense, sparse = _leg(rng, ids, rng.randint(0, 20)), _leg(rng, ids, rng.randint(0, 20))
    query = HybridQuery(
        dense=[0.0],
        sparse=SparseVec(indices=[1], values=[1.0]),
        mode=mode,
        limit=rng.randint(1, 25),
        rrf_k=rng.choice([1.0, 5.0]),
        weights=FusionWeights(dense=rng.choice([1.0, 2.0]), sparse=1.0),
    )
    if mode is QueryMode.DENSE:
        rows = edge_store._one_leg_rows(dense, "dense", query.limit)  # type: ignore[arg-type]
        results = [dense]
    elif mode is QueryMode.SPARSE:
        rows = edge_store._one_leg_rows(sparse, "sparse", query.limit)  # type: ignore[arg-type]
        results = [sparse]
    else:
        rows = edge_store._hybrid_rows(dense, sparse, query)  # type: ignore[arg-type]
        results = [dense, sparse]
    records = [p for leg in results for p in leg]  # the payloads, read by id
    fast = edge_store._with_payloads(rows, records)  # type: ignore[arg-type]
    generic = edge_store._generic_rows(query, results)  # type: ignore[arg-type]
    reference = edge_store._with_payloads(generic, records)  # type: ignore[arg-type]
    assert _dump(fast) == _dump(reference)
    assert [h.scores.model_fields_set for h in fast] == [
        h.scores.model_fields_set for h in reference
    ]


def test_ids_that_are_not_uuids_have_no_fast_path() -> None:
    with pytest.raises(AttributeError):
        edge_store._ranked([_Point(7, 1.0, {})])  # type: ignore[list-item]


def test_a_hit_whose_point_is_gone_when_payloads_are_read_is_left_out() -> None:
    # The legs run without payloads; a point deleted before the fused hits' payloads are
    # read has none, and is not answered with an empty one.
    rng = random.Random(3)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(5)]
    dense = _leg(rng, ids, 5)
    rows = edge_store._one_leg_rows(dense, "dense", 5)  # type: ignore[arg-type]
    gone = rows[1][0]
    kept = edge_store._with_payloads(rows, [p for p in dense if p.id != gone])  # type: ignore[misc]
    assert [h.id for h in kept] == [str(r[0]) for r in rows if r[0] != gone]
    assert [h.scores.dense_rank for h in kept] == [1, 3, 4, 5]
