"""The query path: plan → embed and recall → /rerank → decide, timed per stage.

The rerank stage is budgeted: only ``rerank_depth`` candidates go to /rerank, each cut to a
token cap; scores already known (model, query, chunk text) come from an in-process LRU;
and under load the depth shrinks, said in the result's ``reason``, before the call would
time out. The engine returns a domain ``QueryResult``; the API maps it to its response.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core.errors import SieveError
from core.settings import QuerySettings
from core.types import HybridQuery, ImageRef, MultiVector, QueryMode, ScoredHit
from indexing.records import CollectionRecord
from query.explain import DocumentTrace, explain
from query.plan import PlanDefaults, QueryPlan, QuerySpec, resolve_plan
from query.rank import decide_query
from reranker import (
    RerankDecision,
    RerankDocument,
    RerankErrorCode,
    RerankFailure,
    RerankLoad,
    RerankResult,
    RerankScoreCache,
    failure_from_error,
    score_key,
)
from retriever.bm25 import Bm25Encoder
from tracing import span

__all__ = [
    "DeletedLookup",
    "ImageSource",
    "ModelCatalog",
    "QueryEmbedder",
    "QueryEngine",
    "QueryResult",
    "RankedHit",
    "RecallStore",
    "Reranker",
    "Rerankers",
    "rerank_documents",
    "rerank_text",
]

# Which of these document ids of a collection are deleted (their points may linger).
DeletedLookup = Callable[[CollectionRecord, list[str]], Awaitable[set[str]]]


class RecallStore(Protocol):
    """The store's query side (``AsyncChunkStore`` is one)."""

    async def query(self, name: str, query: HybridQuery) -> list[ScoredHit]:
        """Hybrid recall in one store collection."""
        ...


class QueryEmbedder(Protocol):
    """Embeds query texts (the hub's ``/v1/embeddings``)."""

    async def embed(
        self, texts: list[str], *, model: str, dimension: int | None = None
    ) -> tuple[list[list[float]], int]:
        """One vector per text and the prompt tokens counted."""
        ...

    async def embed_tokens(
        self, texts: list[str], *, model: str, dimension: int | None = None
    ) -> tuple[list[MultiVector], int]:
        """Each text's token vectors and the prompt tokens counted."""
        ...


class Reranker(Protocol):
    """One rerank model's client."""

    async def rerank(self, query: str, documents: list[RerankDocument]) -> RerankResult:
        """A score (or None) per document, in order."""
        ...


class Rerankers(Protocol):
    """The rerank clients by model, their load gauges and the shared score cache."""

    cache: RerankScoreCache

    def load(self, model: str) -> RerankLoad:
        """The model's in-flight pairs and cost a pair."""
        ...

    def get(self, model: str, context_tokens: int | None = None) -> Reranker:
        """The client for ``model`` (pairs of ``context_tokens``, when known)."""
        ...


class ModelCatalog(Protocol):
    """The hub's models: listed for users, checked when a request names one."""

    async def listing(self) -> list[dict[str, Any]]:
        """The hub's model list as it answered."""
        ...

    async def check(self, model: str) -> None:
        """``InvalidInput`` when the hub does not list ``model``."""
        ...

    async def context_tokens(self, model: str) -> int | None:
        """The model's pair context when its hub states it."""
        ...


class ImageSource(Protocol):
    """The stored image of a hit's page."""

    async def load(self, ref: ImageRef) -> bytes | None:
        """The page's image bytes, or None when unavailable."""
        ...


@dataclass(frozen=True, slots=True)
class RankedHit:
    """One returned passage: where it came from, its hit, and the stage scores it got."""

    rank: int
    collection: str
    hit: ScoredHit
    rerank_score: float | None
    final_score: float


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What a query returned and what each stage did (the API's response, as domain data)."""

    query: str
    plan: QueryPlan
    hits: list[RankedHit]
    decision: RerankDecision
    # Candidates that got a rerank score, and how many of them came from the cache.
    scored: int
    cached: int
    reason: str | None
    # The query was cut to its head to fit the rerank model's pairs.
    query_truncated: bool
    timings_ms: dict[str, float]
    usage: dict[str, int | None]
    # Where the returned and the named documents went (``spec.explain``), else None.
    explanation: list[DocumentTrace] | None = None


@dataclass
class _RerankRun:
    scores: list[float | None] | RerankFailure | None = None
    tokens: int | None = None
    cached: int = 0
    reason: str | None = None
    query_truncated: bool = False


@dataclass
class _Recall:
    hits: list[tuple[str, ScoredHit]]
    embed_ms: float
    recall_ms: float
    embed_tokens: int | None


class QueryEngine:
    """Runs one query over one or more of a tenant's collections."""

    def __init__(
        self,
        *,
        store: RecallStore,
        embeddings: QueryEmbedder,
        rerankers: Rerankers,
        catalog: ModelCatalog,
        defaults: PlanDefaults,
        deleted: DeletedLookup | None = None,
        images: ImageSource | None = None,
    ) -> None:
        self._store = store
        self._deleted = deleted
        self._images = images
        self._embeddings = embeddings
        self._rerankers = rerankers
        self.catalog = catalog
        self._defaults = defaults
        # Query vectors carry term frequencies; they do not depend on the average length.
        self._bm25 = Bm25Encoder(avg_len=100.0)

    @property
    def _query(self) -> QuerySettings:
        return self._defaults.query

    async def run(self, collections: list[CollectionRecord], spec: QuerySpec) -> QueryResult:
        """Recall, rerank, cut off and order; never hides what the rerank stage did."""
        with span(
            "query",
            collections=[c.name for c in collections],
            mode=spec.mode.value,
            top_k=spec.top_k,
            top_n=spec.top_n,
        ) as current:
            out = await self._run(collections, spec)
            current.set_attribute("rerank.status", out.decision.outcome.status.value)
            current.set_attribute("results", len(out.hits))
            return out

    async def _run(self, collections: list[CollectionRecord], spec: QuerySpec) -> QueryResult:
        started = time.perf_counter()
        plan = resolve_plan(spec, collections, self._defaults)
        if plan.reranking and plan.check_model:
            await self.catalog.check(plan.rerank_model)
        recall = await self._recall(collections, plan)
        hits = [hit for _, hit in recall.hits]
        t_rerank = time.perf_counter()
        run = _RerankRun()
        depth = plan.rank.rerank_depth
        if plan.reranking and hits:
            with span("query.rerank", model=plan.rerank_model, candidates=depth) as stage:
                run = await self._rerank_stage(plan.rerank_model, spec.query, hits[:depth])
                if isinstance(run.scores, RerankFailure):
                    stage.set_attribute("error.code", run.scores.status.value)
        rerank_ms = (time.perf_counter() - t_rerank) * 1000
        with span("query.cutoff", top_n=plan.top_n, policy=plan.rank.final) as cutting:
            decision = decide_query(plan, [h.score for h in hits], run.scores)
            cutting.set_attribute("dropped", decision.outcome.dropped_by_cutoff)
            cutting.set_attribute("kept", len(decision.ranked))
        traces = None
        if spec.explain or spec.explain_documents:
            named = [h.payload.document_id for h in decision.select(hits)]
            named += list(spec.explain_documents or ())
            traces = explain(plan, hits, run.scores, decision, named)
        ranked = [
            RankedHit(
                rank=rank,
                collection=recall.hits[item.index][0],
                hit=recall.hits[item.index][1],
                rerank_score=item.rerank_score,
                final_score=item.final_score,
            )
            for rank, item in enumerate(decision.ranked, start=1)
        ]
        return QueryResult(
            query=spec.query,
            plan=plan,
            hits=ranked,
            decision=decision,
            scored=len(run.scores) if isinstance(run.scores, list) else 0,
            cached=run.cached,
            reason=decision.outcome.reason or run.reason,
            query_truncated=run.query_truncated,
            explanation=traces,
            timings_ms={
                "embed": round(recall.embed_ms, 2),
                "recall": round(recall.recall_ms, 2),
                "rerank": round(rerank_ms, 2),
                "total": round((time.perf_counter() - started) * 1000, 2),
            },
            usage={"embed_tokens": recall.embed_tokens, "rerank_tokens": run.tokens},
        )

    async def _rerank_stage(self, model: str, query: str, hits: list[ScoredHit]) -> _RerankRun:
        """Score ``hits`` (the first rerank_depth candidates): cache first, then /rerank.

        Under load only the first candidates whose uncached pairs fit the budget are sent;
        the rest keep their recall order (they are past the returned scores).
        """
        cache, load = self._rerankers.cache, self._rerankers.load(model)
        texts = [rerank_text(h) for h in hits]
        keys = [score_key(model, query, text) for text in texts]
        known = cache.lookup(keys)
        misses = [i for i, score in enumerate(known) if score is None]
        allowed = load.allowed_pairs(len(misses))
        reason = None
        depth = len(hits)
        if allowed < len(misses):
            depth = misses[allowed]  # the first miss that does not fit: cut before it
            reason = f"under load: reranked {depth} of {len(hits)} candidates ({load.describe()})"
            misses = misses[:allowed]
        run = _RerankRun(cached=depth - len(misses), reason=reason)
        scores: list[float | None] = list(known[:depth])
        if not misses:
            run.scores = scores
            return run
        ahead = load.start(len(misses))
        started = time.perf_counter()

        def done(*, sample: bool) -> None:
            elapsed = (time.perf_counter() - started) * 1000
            load.finish(len(misses), ahead, elapsed, sample=sample)

        try:
            documents = await rerank_documents(
                [hits[i] for i in misses],
                self._images if model in self._defaults.rerank.image_models else None,
            )
            context = await self.catalog.context_tokens(model)
            result = await self._rerankers.get(model, context).rerank(query, documents)
        except SieveError as exc:
            # A timeout's elapsed time still teaches the cost a pair; a refusal does not.
            done(sample=exc.code == RerankErrorCode.TIMEOUT.value)
            run.scores = failure_from_error(exc)
            return run
        except BaseException:
            done(sample=False)
            raise
        done(sample=True)
        for i, score in zip(misses, result.scores, strict=True):
            scores[i] = score
        cache.store([keys[i] for i in misses], list(result.scores))
        run.scores, run.tokens = scores, result.usage_tokens
        if result.query_truncated:
            run.query_truncated = True
            note = "the query was cut to its head to fit the rerank model's pairs"
            if context is not None:
                note += f" ({context} tokens)"
            run.reason = f"{run.reason}; {note}" if run.reason else note
        return run

    async def _recall(self, collections: list[CollectionRecord], plan: QueryPlan) -> _Recall:
        first, spec = collections[0], plan.spec
        mode = spec.mode
        dense: list[float] | None = None
        embed_tokens: int | None = None
        t0 = time.perf_counter()
        with span("query.embed", model=first.embedding_model, mode=mode.value):
            calls: list[Awaitable[tuple[Any, int]]] = []
            if mode in (QueryMode.HYBRID, QueryMode.DENSE):
                prefix = self._query.query_prefixes.get(first.embedding_model, "")
                calls.append(
                    self._embeddings.embed(
                        [prefix + spec.query],
                        model=first.embedding_model,
                        dimension=first.dimension,
                    )
                )
            if plan.use_late:
                assert plan.late_model is not None
                calls.append(
                    self._embeddings.embed_tokens(
                        [spec.query], model=plan.late_model, dimension=plan.late_dimension
                    )
                )
            answers = await asyncio.gather(*calls)
            late = answers.pop()[0][0] if plan.use_late else None
            if answers:
                vectors, embed_tokens = answers[0]
                dense = vectors[0]
            sparse = self._bm25.embed_query(spec.query) if mode is not QueryMode.DENSE else None
        t1 = time.perf_counter()
        query = HybridQuery(
            dense=dense,
            sparse=sparse,
            mode=mode,
            limit=plan.top_k,
            rrf_k=plan.rank.rrf_k,
            weights=plan.rank.weights,
            filter=spec.filter,
            late=late,
            late_fusion=plan.rank.late_fusion,
        )
        with span(
            "query.recall", collections=[c.name for c in collections], limit=plan.top_k
        ) as stage:
            per = await asyncio.gather(
                *(self._store.query(c.store_name, query) for c in collections)
            )
            if self._deleted is not None:
                # A deleted document's points may outlive its tombstone by a moment: never
                # show them.
                gone = await asyncio.gather(
                    *(
                        self._deleted(c, [h.payload.document_id for h in hits])
                        for c, hits in zip(collections, per, strict=True)
                    )
                )
                per = [
                    [h for h in hits if h.payload.document_id not in g]
                    for hits, g in zip(per, gone, strict=True)
                ]
            stage.set_attribute("candidates", sum(len(hits) for hits in per))
        merged = [(c.name, hit) for c, hits in zip(collections, per, strict=True) for hit in hits]
        # Several collections: fused scores are rank-based, so they compare across them.
        merged.sort(key=lambda pair: -pair[1].score)
        t2 = time.perf_counter()
        return _Recall(
            hits=merged[: plan.top_k],
            embed_ms=(t1 - t0) * 1000,
            recall_ms=(t2 - t1) * 1000,
            embed_tokens=embed_tokens,
        )


async def rerank_documents(
    hits: list[ScoredHit], images: ImageSource | None
) -> list[RerankDocument]:
    """Each hit's text; with ``images`` (an image-capable model) image hits carry their page.

    A text-only model gets the OCR text alone; a page that cannot be loaded is sent as
    text too (logged by the source).
    """
    texts = [rerank_text(h) for h in hits]
    if images is None:
        return [RerankDocument(text=t) for t in texts]
    refs = [h.payload.image for h in hits]
    loaded = iter(await asyncio.gather(*(images.load(ref) for ref in refs if ref is not None)))
    out: list[RerankDocument] = []
    for text, ref in zip(texts, refs, strict=True):
        raw = next(loaded) if ref is not None else None
        out.append(RerankDocument(text=text, images=(raw,) if raw else ()))
    return out


def rerank_text(hit: ScoredHit) -> str:
    """What the reranker reads of a hit: its title (when the text lacks it), then its text."""
    title, text = hit.payload.title, hit.payload.text
    # The cross-encoder reads the title too (BEIR practice); skip it when the text has it.
    return f"{title}\n{text}" if title and title not in text[: len(title) + 8] else text
