"""The ChunkStore contract. Every test runs unchanged against every adapter (see conftest)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from core.errors import Conflict, InvalidInput, NotFound, SieveError
from core.ids import point_id
from core.types import (
    AnyOf,
    ChunkFilter,
    ChunkPoint,
    FieldEquals,
    FusionWeights,
    HybridQuery,
    LateFusion,
    QueryMode,
    Range,
    ScoredHit,
    SparseVec,
    StoreCollectionSpec,
)
from retriever.multivector import maxsim, pack, unpack
from retriever.store import ChunkStore
from tests.retriever.corpus import COLLECTION, DIM, SPEC, chunk, corpus_points, unit, zebra_query


@pytest.fixture
def filled(store: ChunkStore) -> ChunkStore:
    """A store with the contract collection holding the four-document corpus."""
    store.create_collection(SPEC)
    store.upsert(COLLECTION, corpus_points())
    return store


def docs(hits: list[ScoredHit]) -> list[str]:
    return [h.payload.document_id for h in hits]


# ---------------------------------------------------------------- collections


def test_collection_lifecycle(store: ChunkStore) -> None:
    assert not store.collection_exists(COLLECTION)
    store.create_collection(SPEC)
    assert store.collection_exists(COLLECTION)
    assert store.count(COLLECTION) == 0
    with pytest.raises(Conflict):
        store.create_collection(SPEC)
    store.drop_collection(COLLECTION)
    assert not store.collection_exists(COLLECTION)
    with pytest.raises(NotFound):
        store.drop_collection(COLLECTION)
    store.create_collection(SPEC)  # the name is free again, and the new collection is empty
    assert store.count(COLLECTION) == 0


def test_collections_are_independent(store: ChunkStore) -> None:
    other = StoreCollectionSpec(name="other", dense_size=DIM)
    store.create_collection(SPEC)
    store.create_collection(other)
    store.upsert(COLLECTION, corpus_points())
    assert store.count(COLLECTION) == 4
    assert store.count("other") == 0
    store.drop_collection("other")
    assert store.count(COLLECTION) == 4


# ---------------------------------------------------------------- writes and reads


def test_upsert_get_round_trip(filled: ChunkStore) -> None:
    points = corpus_points()
    wanted = [points[2].id, point_id(COLLECTION, "nope", 0), points[0].id]
    got = filled.get(COLLECTION, wanted)
    assert [p.id for p in got] == [points[2].id, points[0].id]  # asked order, missing left out
    first = got[1]
    assert first.payload.document_id == "alpha"
    assert first.payload.text == points[0].payload.text
    assert first.payload.source == "a.txt"
    assert first.payload.page == 1
    assert first.payload.metadata["lang"] == "en"
    assert first.payload.metadata["year"] == 2020
    # datetimes in metadata are stored as ISO strings (JSON payloads)
    assert datetime.fromisoformat(first.payload.metadata["published"]) == datetime(
        2020, 5, 1, tzinfo=UTC
    )
    assert first.dense == pytest.approx(points[0].dense, abs=1e-6)
    assert first.sparse is not None
    assert points[0].sparse is not None
    assert sorted(first.sparse.indices) == sorted(points[0].sparse.indices)


def test_reupsert_is_idempotent(filled: ChunkStore) -> None:
    filled.upsert(COLLECTION, corpus_points())
    filled.upsert(COLLECTION, corpus_points())
    assert filled.count(COLLECTION) == 4


def test_upsert_replaces_payload_by_id(filled: ChunkStore) -> None:
    changed = chunk("alpha", 0, "new text entirely", unit(1.0), page=9)
    filled.upsert(COLLECTION, [changed])
    assert filled.count(COLLECTION) == 4
    [stored] = filled.get(COLLECTION, [changed.id])
    assert stored.payload.text == "new text entirely"
    assert stored.payload.page == 9


def test_list_document_chunks_is_ordered_by_chunk_no(store: ChunkStore) -> None:
    store.create_collection(SPEC)
    # Written out of order, and more than one page would hold in a naive scroll of 2.
    order = [3, 0, 4, 1, 2]
    store.upsert(COLLECTION, [chunk("doc", n, f"part {n}", unit(1.0, n)) for n in order])
    store.upsert(COLLECTION, [chunk("other", 0, "x", unit(1.0))])
    listed = store.list_document_chunks(COLLECTION, "doc")
    assert [c.payload.chunk_no for c in listed] == [0, 1, 2, 3, 4]
    assert [c.id for c in listed] == [point_id(COLLECTION, "doc", n) for n in range(5)]
    assert store.list_document_chunks(COLLECTION, "missing") == []


def test_document_points_carry_every_vector_kind_in_chunk_order(store: ChunkStore) -> None:
    spec = SPEC.model_copy(update={"late_size": 3})
    store.create_collection(spec)
    late = pack([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]])  # unit rows: cosine stores them as-is
    written = [
        chunk("doc", n, f"part {n}", unit(1.0, n)).model_copy(update={"late": late})
        for n in (2, 0, 1)
    ]
    store.upsert(COLLECTION, [*written, chunk("other", 0, "x", unit(1.0))])
    got = store.document_points(COLLECTION, "doc")
    assert [p.payload.chunk_no for p in got] == [0, 1, 2]
    by_no = {p.payload.chunk_no: p for p in written}
    for point in got:
        want = by_no[point.payload.chunk_no]
        assert point.id == want.id
        assert point.payload.text == want.payload.text
        assert point.dense == pytest.approx(want.dense, abs=1e-6)
        assert point.sparse is not None
        assert want.sparse is not None
        assert sorted(point.sparse.indices) == sorted(want.sparse.indices)
        assert point.late is not None
        assert unpack(point.late) == pytest.approx(unpack(late), abs=1e-3)
    # Upserted again as they were exported, they are the same points.
    store.drop_collection(COLLECTION)
    store.create_collection(spec)
    store.upsert(COLLECTION, got)
    assert [p.id for p in store.document_points(COLLECTION, "doc")] == [p.id for p in got]
    assert store.document_points(COLLECTION, "missing") == []


def test_replacing_a_document_with_fewer_chunks_leaves_no_stale_ones(store: ChunkStore) -> None:
    store.create_collection(SPEC)
    store.upsert(COLLECTION, [chunk("doc", n, f"old {n}", unit(1.0, n)) for n in range(5)])
    store.upsert(COLLECTION, [chunk("keep", 0, "other doc", unit(0.0, 1.0))])
    # new version: 2 chunks. Write the new ones first, then delete the stale tail.
    store.upsert(COLLECTION, [chunk("doc", n, f"new {n}", unit(1.0, n)) for n in range(2)])
    store.delete_by_filter(
        COLLECTION,
        ChunkFilter(
            must=[FieldEquals(key="document_id", value="doc"), Range(key="chunk_no", gte=2)]
        ),
    )
    listed = store.list_document_chunks(COLLECTION, "doc")
    assert [(c.payload.chunk_no, c.payload.text) for c in listed] == [(0, "new 0"), (1, "new 1")]
    assert store.count(COLLECTION) == 3  # the other document is untouched


def test_delete_document(filled: ChunkStore) -> None:
    filled.upsert(COLLECTION, [chunk("alpha", 1, "second chunk", unit(1.0, 0.1))])
    assert filled.count(COLLECTION) == 5
    filled.delete_document(COLLECTION, "alpha")
    assert filled.count(COLLECTION) == 3
    assert filled.list_document_chunks(COLLECTION, "alpha") == []
    filled.delete_document(COLLECTION, "alpha")  # deleting nothing is fine
    assert filled.count(COLLECTION) == 3


def test_delete_by_empty_filter_is_refused(filled: ChunkStore) -> None:
    with pytest.raises(InvalidInput):
        filled.delete_by_filter(COLLECTION, ChunkFilter())
    assert filled.count(COLLECTION) == 4


# ---------------------------------------------------------------- filters

FILTER_CASES = [
    pytest.param([FieldEquals(key="source", value="b.md")], {"beta"}, id="eq-keyword"),
    pytest.param([FieldEquals(key="page", value=3)], {"gamma"}, id="eq-int"),
    pytest.param([FieldEquals(key="metadata.flag", value=True)], {"gamma"}, id="eq-bool"),
    pytest.param([FieldEquals(key="metadata.lang", value="en")], {"alpha", "gamma"}, id="meta"),
    pytest.param([AnyOf(key="source", values=["a.txt", "d.txt"])], {"alpha", "omega"}, id="any"),
    pytest.param([AnyOf(key="page", values=[1, 2])], {"alpha", "beta"}, id="any-int"),
    pytest.param([Range(key="page", gte=2, lt=3)], {"beta"}, id="range-int"),
    pytest.param([Range(key="metadata.year", gt=2020)], {"beta", "gamma"}, id="range-meta"),
    pytest.param(
        [Range(key="metadata.published", gte=datetime(2021, 1, 1, tzinfo=UTC))],
        {"beta", "gamma"},
        id="range-datetime",
    ),
    pytest.param(
        [Range(key="metadata.published", lt=datetime(2020, 6, 1))],  # naive: read as UTC
        {"alpha", "omega"},
        id="range-datetime-naive",
    ),
    pytest.param(
        [FieldEquals(key="metadata.lang", value="en"), Range(key="page", lte=1)],
        {"alpha"},
        id="and",
    ),
]


@pytest.mark.parametrize(("conditions", "expected"), FILTER_CASES)
def test_filters_in_count_and_query(
    filled: ChunkStore, conditions: list[FieldEquals | AnyOf | Range], expected: set[str]
) -> None:
    chunk_filter = ChunkFilter(must=conditions)
    assert filled.count(COLLECTION, chunk_filter) == len(expected)
    hits = filled.query(COLLECTION, zebra_query(QueryMode.DENSE, filter=chunk_filter))
    assert set(docs(hits)) == expected


def test_filtered_delete(filled: ChunkStore) -> None:
    filled.delete_by_filter(
        COLLECTION, ChunkFilter(must=[FieldEquals(key="metadata.lang", value="en")])
    )
    assert filled.count(COLLECTION) == 2
    assert set(docs(filled.query(COLLECTION, zebra_query(QueryMode.DENSE)))) == {"beta", "omega"}


# ---------------------------------------------------------------- recall and fusion


def test_dense_only_returns_the_dense_order(filled: ChunkStore) -> None:
    hits = filled.query(COLLECTION, zebra_query(QueryMode.DENSE))
    assert docs(hits) == ["alpha", "gamma", "beta", "omega"]
    assert [h.scores.dense_rank for h in hits] == [1, 2, 3, 4]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in hits] == pytest.approx([1.0, 0.8, 0.3, -0.5], abs=1e-5)
    for hit in hits:
        assert hit.scores.dense == hit.score
        assert hit.scores.sparse is None
        assert hit.scores.sparse_rank is None
        assert hit.scores.fused is None


def test_sparse_only_returns_the_bm25_order(filled: ChunkStore) -> None:
    hits = filled.query(COLLECTION, zebra_query(QueryMode.SPARSE))
    assert docs(hits) == ["beta", "gamma", "alpha"]  # omega has no "zebra"
    assert [h.scores.sparse_rank for h in hits] == [1, 2, 3]
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert scores[-1] > 0
    for hit in hits:
        assert hit.scores.sparse == hit.score
        assert hit.scores.dense is None
        assert hit.scores.dense_rank is None


def test_hybrid_scores_every_leg(filled: ChunkStore) -> None:
    k = 1.0
    hits = filled.query(COLLECTION, zebra_query(rrf_k=k, weights=FusionWeights(dense=2, sparse=1)))
    by_doc = {h.payload.document_id: h for h in hits}
    assert set(by_doc) == {"alpha", "beta", "gamma", "omega"}
    alpha = by_doc["alpha"].scores
    assert (alpha.dense_rank, alpha.sparse_rank) == (1, 3)
    assert alpha.dense == pytest.approx(1.0, abs=1e-5)
    assert alpha.sparse is not None
    assert alpha.sparse > 0
    assert alpha.fused == pytest.approx(2 / (k + 1) + 1 / (k + 3))
    omega = by_doc["omega"].scores
    assert omega.sparse is None
    assert omega.sparse_rank is None
    assert omega.fused == pytest.approx(2 / (k + 4))
    for hit in hits:
        assert hit.score == hit.scores.fused


@pytest.mark.parametrize(
    ("weights", "order"),
    [
        (FusionWeights(dense=2, sparse=1), ["alpha", "beta", "gamma", "omega"]),
        (FusionWeights(dense=1, sparse=2), ["beta", "alpha", "gamma", "omega"]),
    ],
)
def test_weights_decide_the_winner(
    filled: ChunkStore, weights: FusionWeights, order: list[str]
) -> None:
    # k=1. alpha: dense 1st, sparse 3rd; beta: dense 3rd, sparse 1st; gamma 2nd in both.
    # 2:1 -> alpha 1.25, beta 1.0, gamma 1.0 (tie: beta's best rank 1 beats gamma's 2).
    # 1:2 -> beta 1.25, alpha 1.0, gamma 1.0 (same tie-break).
    hits = filled.query(COLLECTION, zebra_query(rrf_k=1.0, weights=weights))
    assert docs(hits) == order


def test_limit_and_prefetch_limit(filled: ChunkStore) -> None:
    assert len(filled.query(COLLECTION, zebra_query(limit=2))) == 2
    # each leg recalls only its top 1: alpha (dense) and beta (sparse); nothing else exists
    hits = filled.query(COLLECTION, zebra_query(limit=10, prefetch_limit=1, rrf_k=1.0))
    assert docs(hits) == ["alpha", "beta"]
    assert len(filled.query(COLLECTION, zebra_query(QueryMode.DENSE, limit=3))) == 3


def test_query_after_optimize(filled: ChunkStore) -> None:
    before = filled.query(COLLECTION, zebra_query())
    filled.optimize(COLLECTION)
    after = filled.query(COLLECTION, zebra_query())
    assert [h.id for h in after] == [h.id for h in before]


def test_query_on_empty_collection(store: ChunkStore) -> None:
    store.create_collection(SPEC)
    assert store.query(COLLECTION, zebra_query()) == []


# ---------------------------------------------------------------- errors


_MISSING = "missing"
_POINT = chunk("d", 0, "text", unit(1.0), collection=_MISSING)
_ON_MISSING: dict[str, Callable[[ChunkStore], object]] = {
    "upsert": lambda s: s.upsert(_MISSING, [_POINT]),
    "get": lambda s: s.get(_MISSING, [_POINT.id]),
    "count": lambda s: s.count(_MISSING),
    "delete_document": lambda s: s.delete_document(_MISSING, "d"),
    "delete_by_filter": lambda s: s.delete_by_filter(
        _MISSING, ChunkFilter(must=[FieldEquals(key="source", value="x")])
    ),
    "list_document_chunks": lambda s: s.list_document_chunks(_MISSING, "d"),
    "query": lambda s: s.query(_MISSING, zebra_query()),
    "optimize": lambda s: s.optimize(_MISSING),
    "drop_collection": lambda s: s.drop_collection(_MISSING),
}


@pytest.mark.parametrize("op", sorted(_ON_MISSING))
def test_missing_collection_is_not_found(store: ChunkStore, op: str) -> None:
    store.create_collection(SPEC)  # another collection exists; the named one does not
    with pytest.raises(NotFound):
        _ON_MISSING[op](store)


def test_bad_input_is_invalid_input(filled: ChunkStore) -> None:
    wrong_dim = chunk("alpha", 5, "text", [1.0, 0.0])
    with pytest.raises(InvalidInput):
        filled.upsert(COLLECTION, [wrong_dim])
    with pytest.raises(InvalidInput):
        filled.query(COLLECTION, HybridQuery(dense=[1.0, 0.0], mode=QueryMode.DENSE))
    bad_id = chunk("alpha", 6, "text", unit(1.0)).model_copy(update={"id": "not-a-uuid"})
    with pytest.raises(InvalidInput):
        filled.upsert(COLLECTION, [bad_id])
    with pytest.raises(InvalidInput):
        filled.get(COLLECTION, ["not-a-uuid"])
    assert filled.count(COLLECTION) == 4  # nothing half-written


def test_dense_only_collection(store: ChunkStore) -> None:
    spec = StoreCollectionSpec(name="dense_only", dense_size=DIM, sparse=False)
    store.create_collection(spec)
    plain = chunk("d", 0, "zebra", unit(1.0), collection="dense_only")
    store.upsert("dense_only", [plain.model_copy(update={"sparse": None})])
    hits = store.query("dense_only", zebra_query(QueryMode.DENSE))
    assert docs(hits) == ["d"]
    with pytest.raises(InvalidInput):
        store.query("dense_only", zebra_query(QueryMode.SPARSE))
    with pytest.raises(InvalidInput):
        store.upsert("dense_only", [plain])  # carries a sparse vector


def test_closed_store_raises_sieve_errors(filled: ChunkStore) -> None:
    filled.close()
    with pytest.raises(SieveError) as info:
        filled.count(COLLECTION)
    assert info.value.code in {"store_closed", "not_found"}
    with pytest.raises(SieveError):
        filled.query(COLLECTION, zebra_query())


def test_empty_sparse_query_finds_nothing(filled: ChunkStore) -> None:
    query = HybridQuery(sparse=SparseVec(indices=[], values=[]), mode=QueryMode.SPARSE)
    assert filled.query(COLLECTION, query) == []


# ---------------------------------------------------------------- late interaction

LATE_DIM = 4
LATE_SPEC = StoreCollectionSpec(name="contract-late", dense_size=DIM, late_size=LATE_DIM)


def _e(i: int) -> list[float]:
    return [1.0 if j == i else 0.0 for j in range(LATE_DIM)]


# Token vectors chosen so MaxSim against the query tokens [e0, e1] is known exactly:
# omega 2.0 (both tokens matched), beta 1.0, gamma 1.0 (weaker duplicate tokens do not add),
# alpha 0.0. The recall order of the zebra query is gamma, alpha, beta, omega (see corpus).
LATE_TOKENS = {
    "alpha": [_e(2), _e(3)],
    "beta": [_e(0)],
    "gamma": [_e(1), _e(1), unit(1.0, 1.0)],
    "omega": [_e(0), _e(1)],
}
LATE_QUERY = pack([_e(0), _e(1)])


def _late_points() -> list[ChunkPoint]:
    return [
        p.model_copy(update={"late": pack(LATE_TOKENS[p.payload.document_id])})
        for p in corpus_points(LATE_SPEC.name)
    ]


@pytest.fixture
def late_filled(store: ChunkStore) -> ChunkStore:
    """A collection with token vectors, holding the corpus."""
    store.create_collection(LATE_SPEC)
    store.upsert(LATE_SPEC.name, _late_points())
    return store


def test_token_vectors_round_trip(late_filled: ChunkStore) -> None:
    points = _late_points()
    got = late_filled.get(LATE_SPEC.name, [points[1].id])[0]
    assert got.late is not None
    assert unpack(got.late).tolist() == unpack(points[1].late).tolist()  # type: ignore[arg-type]
    assert late_filled.late_tokens(LATE_SPEC.name) == pytest.approx((2 + 1 + 3 + 2) / 4)


def test_late_scores_are_maxsim_and_ranked(late_filled: ChunkStore) -> None:
    by_late = late_filled.query(
        LATE_SPEC.name, zebra_query(late=LATE_QUERY, late_fusion=LateFusion(recall=0, late=1))
    )
    scores = {h.payload.document_id: h.scores.late for h in by_late}
    query = unpack(LATE_QUERY)
    for doc, tokens in LATE_TOKENS.items():
        assert scores[doc] == pytest.approx(maxsim(query, unpack(pack(tokens))), abs=1e-3)
    assert docs(by_late)[0] == "omega"  # last in recall, first by MaxSim
    assert docs(by_late)[-1] == "alpha"


def test_late_weight_zero_keeps_the_recall_order(late_filled: ChunkStore) -> None:
    plain = late_filled.query(LATE_SPEC.name, zebra_query())
    kept = late_filled.query(
        LATE_SPEC.name, zebra_query(late=LATE_QUERY, late_fusion=LateFusion(late=0))
    )
    assert docs(kept) == docs(plain)
    assert [h.score for h in kept] == [h.score for h in plain]
    assert all(h.scores.late is not None for h in kept)
    assert all(h.scores.late is None for h in plain)


def test_late_fusion_moves_hits_by_weighted_rrf(late_filled: ChunkStore) -> None:
    plain = docs(late_filled.query(LATE_SPEC.name, zebra_query()))
    fused = late_filled.query(
        LATE_SPEC.name, zebra_query(late=LATE_QUERY, late_fusion=LateFusion(recall=1, late=1, k=2))
    )
    # beta and gamma tie at MaxSim 1.0: ties go by id, as in every leg.
    late_order = sorted(MAXSIM, key=lambda d: (-MAXSIM[d], point_id(LATE_SPEC.name, d, 0)))
    expected = {d: 1 / (2 + plain.index(d) + 1) + 1 / (2 + late_order.index(d) + 1) for d in plain}
    assert [h.score for h in fused] == pytest.approx(sorted(expected.values(), reverse=True))
    assert docs(fused) == sorted(plain, key=lambda d: (-expected[d], plain.index(d)))
    assert docs(fused) != plain  # the late rank did move something


MAXSIM = {"alpha": 0.0, "beta": 1.0, "gamma": 1.0, "omega": 2.0}


def test_late_query_honours_the_filter(late_filled: ChunkStore) -> None:
    only = ChunkFilter(must=[AnyOf(key="document_id", values=["alpha", "beta"])])
    hits = late_filled.query(
        LATE_SPEC.name,
        zebra_query(late=LATE_QUERY, filter=only, late_fusion=LateFusion(recall=0, late=1)),
    )
    assert docs(hits) == ["beta", "alpha"]


def test_late_vectors_need_a_late_collection(filled: ChunkStore) -> None:
    with pytest.raises(InvalidInput):
        filled.upsert(COLLECTION, _late_points()[:1])
    with pytest.raises(InvalidInput):
        filled.query(COLLECTION, zebra_query(late=LATE_QUERY))
    assert filled.late_tokens(COLLECTION) is None


def test_late_vectors_of_the_wrong_size_are_refused(late_filled: ChunkStore) -> None:
    wrong = pack([[1.0, 0.0, 0.0]])
    with pytest.raises(InvalidInput):
        late_filled.query(LATE_SPEC.name, zebra_query(late=wrong))
    point = _late_points()[0].model_copy(update={"late": wrong})
    with pytest.raises(InvalidInput):
        late_filled.upsert(LATE_SPEC.name, [point])


def test_late_ranking_survives_optimize(late_filled: ChunkStore) -> None:
    query = zebra_query(late=LATE_QUERY, late_fusion=LateFusion(recall=0, late=1))
    before = docs(late_filled.query(LATE_SPEC.name, query))
    late_filled.optimize(LATE_SPEC.name)  # Edge: segments indexed, token vectors quantized
    assert docs(late_filled.query(LATE_SPEC.name, query)) == before
