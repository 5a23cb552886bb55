"""``QueryEngine`` over fake ports (no HTTP, no store): plan → recall → rerank → decide."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any

import pytest

from core.errors import InvalidInput, UpstreamUnavailable
from core.settings import QuerySettings, RerankSettings
from core.types import ChunkPayload, HybridQuery, LegScores, MultiVector, QueryMode, ScoredHit
from indexing.records import CollectionRecord
from query import PlanDefaults, QueryEngine, QueryResult, QuerySpec
from reranker import RerankDocument, RerankLoad, RerankResult, RerankScoreCache, RerankStatus


def _hit(doc: str, score: float, text: str | None = None) -> ScoredHit:
    payload = ChunkPayload(document_id=doc, content_hash="h", chunk_no=0, text=text or doc)
    return ScoredHit(id=f"{doc}-0", score=score, scores=LegScores(fused=score), payload=payload)


@dataclass
class FakeStore:
    hits: dict[str, list[ScoredHit]]
    queries: list[HybridQuery] = field(default_factory=list)

    async def query(self, name: str, query: HybridQuery) -> list[ScoredHit]:
        self.queries.append(query)
        return self.hits[name][: query.limit]


@dataclass
class FakeEmbedder:
    calls: list[str] = field(default_factory=list)

    async def embed(
        self, texts: list[str], *, model: str, dimension: int | None = None
    ) -> tuple[list[list[float]], int]:
        self.calls.append(f"embed:{model}")
        return [[0.1] * (dimension or 4) for _ in texts], 7

    async def embed_tokens(
        self, texts: list[str], *, model: str, dimension: int | None = None
    ) -> tuple[list[MultiVector], int]:
        self.calls.append(f"tokens:{model}")
        dim = dimension or 4
        row = base64.b64encode(bytes(2 * dim)).decode()  # one token vector of float16 zeros
        return [MultiVector(dim=dim, count=1, data=row) for _ in texts], 3


@dataclass
class FakeReranker:
    # Score by text; an exception to raise instead.
    scores: dict[str, float]
    error: Exception | None = None
    sent: list[list[str]] = field(default_factory=list)

    async def rerank(self, query: str, documents: list[RerankDocument]) -> RerankResult:
        self.sent.append([d.text for d in documents])
        if self.error is not None:
            raise self.error
        return RerankResult(
            model="m",
            scores=tuple(self.scores.get(d.text, 0.0) for d in documents),
            usage_tokens=11,
        )


@dataclass
class FakeRerankers:
    reranker: FakeReranker
    cache: RerankScoreCache = field(default_factory=lambda: RerankScoreCache(100))
    loads: dict[str, RerankLoad] = field(default_factory=dict)

    def load(self, model: str) -> RerankLoad:
        return self.loads.setdefault(model, RerankLoad(budget_ms=10_000, min_depth=1))

    contexts: list[int | None] = field(default_factory=list)

    def get(self, model: str, context_tokens: int | None = None) -> FakeReranker:
        self.contexts.append(context_tokens)
        return self.reranker


@dataclass
class FakeCatalog:
    models: set[str]
    checked: list[str] = field(default_factory=list)
    context: int | None = None

    async def context_tokens(self, model: str) -> int | None:
        return self.context

    async def listing(self) -> list[dict[str, Any]]:
        return [{"id": m} for m in sorted(self.models)]

    async def check(self, model: str) -> None:
        self.checked.append(model)
        if model not in self.models:
            raise InvalidInput(f"unknown rerank model {model!r}", code="unknown_model")


def _coll(name: str, **kw: Any) -> CollectionRecord:
    return CollectionRecord(tenant="t", name=name, embedding_model="bge", dimension=4, **kw)


def _engine(
    hits: dict[str, list[ScoredHit]],
    reranker: FakeReranker,
    *,
    deleted: set[str] | None = None,
    rerank: RerankSettings | None = None,
) -> tuple[QueryEngine, FakeStore, FakeEmbedder, FakeCatalog]:
    store, embedder, catalog = FakeStore(hits), FakeEmbedder(), FakeCatalog({"m", "other"})

    async def lookup(_: CollectionRecord, ids: list[str]) -> set[str]:
        return {i for i in ids if i in (deleted or set())}

    engine = QueryEngine(
        store=store,
        embeddings=embedder,
        rerankers=FakeRerankers(reranker),
        catalog=catalog,
        defaults=PlanDefaults(QuerySettings(), rerank or RerankSettings(), "m"),
        deleted=lookup,
    )
    return engine, store, embedder, catalog


def _run(engine: QueryEngine, colls: list[CollectionRecord], spec: QuerySpec) -> QueryResult:
    return asyncio.run(engine.run(colls, spec))


def _docs(result: QueryResult) -> list[str]:
    return [h.hit.payload.document_id for h in result.hits]


RECALL = [_hit(f"d{i}", 1.0 - i / 20) for i in range(10)]


def test_the_reranker_orders_the_sent_candidates_and_the_rest_keep_recall_order() -> None:
    reranker = FakeReranker({"d2": 0.9, "d1": 0.5})
    engine, store, embedder, _ = _engine({"t--c": RECALL}, reranker)
    spec = QuerySpec(query="q", top_k=10, top_n=5, rerank_depth=3, final="rerank")
    out = _run(engine, [_coll("c", store="t--c")], spec)
    assert reranker.sent == [["d0", "d1", "d2"]]  # only the depth goes to /rerank
    assert _docs(out) == ["d2", "d1", "d0", "d3", "d4"]
    assert out.decision.outcome.status is RerankStatus.OK
    assert (out.scored, out.cached, out.usage["rerank_tokens"]) == (3, 0, 11)
    assert out.hits[0].rerank_score == 0.9
    assert store.queries[0].limit == 10
    assert embedder.calls == ["embed:bge"]


def test_known_scores_come_from_the_cache_on_the_next_query() -> None:
    reranker = FakeReranker({"d2": 0.9})
    engine, *_ = _engine({"t--c": RECALL}, reranker)
    spec = QuerySpec(query="q", top_k=10, rerank_depth=3, final="rerank")
    _run(engine, [_coll("c", store="t--c")], spec)
    again = _run(engine, [_coll("c", store="t--c")], spec)
    assert len(reranker.sent) == 1
    assert (again.scored, again.cached) == (3, 3)
    assert _docs(again)[0] == "d2"


def test_a_failing_reranker_is_reported_and_recall_order_kept() -> None:
    reranker = FakeReranker({}, error=UpstreamUnavailable("hub down", code="rerank_unavailable"))
    engine, *_ = _engine({"t--c": RECALL}, reranker)
    out = _run(engine, [_coll("c", store="t--c")], QuerySpec(query="q", top_n=4))
    assert out.decision.outcome.status is not RerankStatus.OK
    assert out.reason
    assert _docs(out) == ["d0", "d1", "d2", "d3"]


def test_deleted_documents_never_show_and_collections_merge_by_score() -> None:
    a = [_hit("a1", 0.9), _hit("a2", 0.5)]
    b = [_hit("b1", 0.7), _hit("b2", 0.3)]
    engine, *_ = _engine({"t--a": a, "t--b": b}, FakeReranker({}), deleted={"a2"})
    spec = QuerySpec(query="q", rerank=False, top_k=3, top_n=3)
    out = _run(engine, [_coll("a", store="t--a"), _coll("b", store="t--b")], spec)
    assert _docs(out) == ["a1", "b1", "b2"]
    assert [h.collection for h in out.hits] == ["a", "b", "b"]
    assert out.decision.outcome.status is RerankStatus.SKIPPED


def test_a_named_model_is_checked_and_an_unknown_one_refused() -> None:
    engine, _, _, catalog = _engine({"t--c": RECALL}, FakeReranker({}))
    _run(engine, [_coll("c", store="t--c")], QuerySpec(query="q"))
    assert catalog.checked == []  # the default model is not checked on every query
    _run(engine, [_coll("c", store="t--c")], QuerySpec(query="q", rerank_model="other"))
    assert catalog.checked == ["other"]
    with pytest.raises(InvalidInput, match="unknown rerank model"):
        _run(engine, [_coll("c", store="t--c")], QuerySpec(query="q", rerank_model="nope"))


def test_late_interaction_embeds_token_vectors_and_sparse_only_skips_the_dense_call() -> None:
    engine, store, embedder, _ = _engine({"t--c": RECALL}, FakeReranker({}))
    late = _coll("c", store="t--c", late_model="colbert", late_dimension=4)
    _run(engine, [late], QuerySpec(query="q", rerank=False))
    assert embedder.calls == ["embed:bge", "tokens:colbert"]
    embedder.calls.clear()
    _run(engine, [late], QuerySpec(query="q", rerank=False, late=False, mode=QueryMode.SPARSE))
    assert embedder.calls == []
    with_late, sparse_only = store.queries
    assert with_late.late is not None
    assert sparse_only.late is None
    assert sparse_only.dense is None


def test_the_stored_policy_shapes_the_plan_the_engine_runs() -> None:
    from core.query_policy import QueryPolicy  # noqa: PLC0415

    reranker = FakeReranker({"d4": 0.99})
    engine, store, *_ = _engine({"t--c": RECALL}, reranker)
    tuned = _coll(
        "c", store="t--c", policy=QueryPolicy(rerank_depth=5, final="rerank", dense_weight=3.0)
    )
    out = _run(engine, [tuned], QuerySpec(query="q"))
    assert reranker.sent == [["d0", "d1", "d2", "d3", "d4"]]
    assert _docs(out)[0] == "d4"
    assert store.queries[0].weights.dense == 3.0
    assert out.plan.rank.rerank_depth == 5
