"""Both engines, the same data: the same hits, in the same order, with the same scores."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from core.types import FusionWeights, HybridQuery, LateFusion, QueryMode, StoreCollectionSpec
from retriever.edge_store import EdgeChunkStore
from retriever.multivector import pack
from retriever.qdrant_store import QdrantChunkStore
from tests.retriever.corpus import ENCODER, chunk

WORDS = [f"w{i}" for i in range(40)]


def _close(x: float | None, y: float | None) -> bool:
    if x is None or y is None:
        return x is y
    return x == pytest.approx(y, rel=1e-4, abs=1e-6)


def test_edge_and_qdrant_rank_identically(tmp_path: Path) -> None:
    rng = random.Random(7)
    spec = StoreCollectionSpec(name="agree", dense_size=8)
    points = []
    for doc in range(60):
        text = " ".join(rng.choices(WORDS, weights=[1 / (i + 1) for i in range(40)], k=12))
        dense = [rng.gauss(0, 1) for _ in range(8)]
        points.append(chunk(f"doc{doc}", 0, text, dense, collection="agree"))
    edge = EdgeChunkStore(tmp_path)
    server = QdrantChunkStore(QdrantClient(":memory:"))
    try:
        for store in (edge, server):
            store.create_collection(spec)
            store.upsert("agree", points)
        for trial in range(10):
            query_text = " ".join(rng.choices(WORDS, k=4))
            for mode in QueryMode:
                query = HybridQuery(
                    dense=[rng.gauss(0, 1) for _ in range(8)],
                    sparse=ENCODER.embed_query(query_text),
                    mode=mode,
                    limit=10,
                    # every leg sees every candidate: which of several exactly tied points
                    # makes a leg's cut-off is engine-defined (see the report)
                    prefetch_limit=100,
                    weights=FusionWeights(dense=2, sparse=1),
                )
                a, b = edge.query("agree", query), server.query("agree", query)
                assert [h.id for h in a] == [h.id for h in b], (trial, mode)
                for x, y in zip(a, b, strict=True):
                    assert _close(x.score, y.score)
                    assert _close(x.scores.dense, y.scores.dense)
                    assert _close(x.scores.sparse, y.scores.sparse)
                    assert x.scores.dense_rank == y.scores.dense_rank
                    assert x.scores.sparse_rank == y.scores.sparse_rank
    finally:
        edge.close()
        server.close()


def test_edge_and_qdrant_agree_on_late_interaction(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    spec = StoreCollectionSpec(name="agree-late", dense_size=8, late_size=16)
    points = []
    for doc in range(40):
        text = " ".join(random.Random(doc).choices(WORDS, k=10))
        tokens = rng.normal(size=(int(rng.integers(2, 12)), 16))
        tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
        point = chunk(f"doc{doc}", 0, text, rng.normal(size=8).tolist(), collection="agree-late")
        points.append(point.model_copy(update={"late": pack(tokens)}))
    edge = EdgeChunkStore(tmp_path)
    server = QdrantChunkStore(QdrantClient(":memory:"))
    try:
        for store in (edge, server):
            store.create_collection(spec)
            store.upsert("agree-late", points)
        for _ in range(5):
            q = rng.normal(size=(5, 16))
            q /= np.linalg.norm(q, axis=1, keepdims=True)
            query = HybridQuery(
                dense=rng.normal(size=8).tolist(),
                sparse=ENCODER.embed_query(" ".join(random.Random(1).choices(WORDS, k=3))),
                limit=10,
                prefetch_limit=100,
                late=pack(q),
                late_fusion=LateFusion(recall=1, late=1, k=2),
            )
            a, b = edge.query("agree-late", query), server.query("agree-late", query)
            assert [h.id for h in a] == [h.id for h in b]
            for x, y in zip(a, b, strict=True):
                assert _close(x.scores.late, y.scores.late)
                assert _close(x.score, y.score)
    finally:
        edge.close()
        server.close()
