"""The query path: embed → hybrid recall → /rerank → cutoff → final order, timed per stage.

The rerank stage is budgeted: only ``rerank_depth`` candidates go to /rerank, each cut to a
token cap; scores already known (model, query, chunk text) come from an in-process LRU;
and under load the depth shrinks, said in ``rerank.reason``, before the call would time out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from core.errors import InvalidInput, SieveError
from core.settings import ModelSettings, QuerySettings, RerankSettings
from core.types import (
    AnyOf,
    ChunkFilter,
    Condition,
    FieldEquals,
    HybridQuery,
    ImageRef,
    LateFusion,
    QueryMode,
    Range,
    ScoredHit,
)
from indexing.records import CollectionRecord
from ingest.embeddings_client import AsyncEmbeddingsClient
from reranker import (
    CircuitBreaker,
    HttpReranker,
    OnRerankError,
    PairBudget,
    RerankDocument,
    RerankErrorCode,
    RerankFailure,
    RerankLoad,
    RerankScoreCache,
    dialect_named,
    failure_from_error,
    finalize_ranking,
    resolve_min_score,
    score_key,
)
from retriever.bm25 import Bm25Encoder
from retriever.store import AsyncChunkStore
from services.api.query_images import PageImageSource, image_url
from services.api.query_plan import QueryPlan, resolve_plan
from services.api.schemas_query import (
    HitImage,
    HitScores,
    QueryFilter,
    QueryHit,
    QueryRequest,
    QueryResponse,
    RangeBounds,
    RerankReport,
)
from tracing import span

__all__ = [
    "DeletedLookup",
    "ModelsCatalog",
    "QueryEngine",
    "RerankerPool",
    "rerank_documents",
    "to_chunk_filter",
]


def to_chunk_filter(flt: QueryFilter | None) -> ChunkFilter | None:
    """The API's filter as the store's filter (keys: ``document_id``, ``source``, ...)."""
    if flt is None:
        return None
    must: list[Condition] = []
    if flt.document_ids:
        must.append(AnyOf(key="document_id", values=flt.document_ids))
    if isinstance(flt.source, str):
        must.append(FieldEquals(key="source", value=flt.source))
    elif flt.source:
        must.append(AnyOf(key="source", values=flt.source))
    if flt.page is not None:
        must.append(_condition("page", flt.page))
    for key, cond in (flt.metadata or {}).items():
        must.append(_condition(f"metadata.{key}", cond))
    return ChunkFilter(must=must) if must else None


def _condition(key: str, cond: Any) -> Condition:
    try:
        if isinstance(cond, RangeBounds):
            return Range(key=key, **cond.model_dump())
        if isinstance(cond, list):
            return AnyOf(key=key, values=cond)
        return FieldEquals(key=key, value=cond)
    except ValueError as exc:
        raise InvalidInput(f"filter on {key!r}: {exc}", code="invalid_filter") from exc


@dataclass
class ModelsCatalog:
    """The hub's ``/v1/models`` ids, cached, so a request can name a rerank model."""

    client: httpx.AsyncClient
    ttl_s: float
    _ids: frozenset[str] | None = None
    _fetched: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def listing(self) -> list[dict[str, Any]]:
        """The hub's model list as it answered (``data``)."""
        resp = await self.client.get("models")
        resp.raise_for_status()
        body = resp.json()
        data = body.get("data", []) if isinstance(body, dict) else []
        return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]

    async def ids(self) -> frozenset[str] | None:
        """Model ids, or None when the hub cannot be asked right now."""
        async with self._lock:
            if self._ids is None or time.monotonic() - self._fetched > self.ttl_s:
                try:
                    self._ids = frozenset(m["id"] for m in await self.listing())
                    self._fetched = time.monotonic()
                except (httpx.HTTPError, ValueError):
                    return self._ids
            return self._ids

    async def check(self, model: str) -> None:
        """``InvalidInput`` when the hub answers and does not list ``model``."""
        ids = await self.ids()
        if ids is not None and model not in ids:
            raise InvalidInput(
                f"unknown rerank model {model!r}; the hub serves: {', '.join(sorted(ids))}",
                code="unknown_model",
            )


class RerankerPool:
    """One ``HttpReranker`` per model (each with its own circuit breaker), sharing one client."""

    def __init__(
        self, client: httpx.AsyncClient, models: ModelSettings, rerank: RerankSettings
    ) -> None:
        self._client = client
        self._models = models
        self._rerank = rerank
        self._pool: dict[str, HttpReranker] = {}
        self._loads: dict[str, RerankLoad] = {}
        self.cache = RerankScoreCache(rerank.cache_size)

    def load(self, model: str) -> RerankLoad:
        """The in-flight pairs and recent cost a pair of ``model``'s peer."""
        if model not in self._loads:
            s = self._rerank
            self._loads[model] = RerankLoad(budget_ms=s.budget_ms, min_depth=s.min_depth)
        return self._loads[model]

    def get(self, model: str) -> HttpReranker:
        """The client for ``model``."""
        if model not in self._pool:
            s = self._rerank
            self._pool[model] = HttpReranker(
                self._client,
                model=model,
                endpoint="rerank",
                dialect=dialect_named(s.dialect_for(model)),
                api_key=self._models.api_key,
                timeout_s=s.timeout_s,
                # The stage's budget per query, retries included: retrying an attempt that
                # timed out would queue more work on a hub that is already too slow.
                total_timeout_s=s.timeout_s,
                max_retries=s.max_retries,
                max_documents_per_request=s.max_documents_per_request,
                max_images_per_request=s.max_images_per_request,
                max_concurrency=s.max_concurrency,
                budget=PairBudget(
                    context_tokens=s.context_tokens, max_document_tokens=s.document_tokens
                ),
                breaker=CircuitBreaker(
                    failure_threshold=s.breaker_failures, reset_timeout_s=s.breaker_reset_s
                ),
            )
        return self._pool[model]


@dataclass
class _RerankRun:
    scores: list[float | None] | RerankFailure | None = None
    tokens: int | None = None
    cached: int = 0
    reason: str | None = None


@dataclass
class _Recall:
    hits: list[tuple[str, ScoredHit]]
    embed_ms: float
    recall_ms: float
    embed_tokens: int | None


# Which of these document ids of a collection are deleted (their points may linger).
DeletedLookup = Callable[[CollectionRecord, list[str]], Awaitable[set[str]]]


class QueryEngine:
    """Runs one query over one or more of a tenant's collections."""

    def __init__(
        self,
        *,
        store: AsyncChunkStore,
        embeddings: AsyncEmbeddingsClient,
        rerankers: RerankerPool,
        catalog: ModelsCatalog,
        models: ModelSettings,
        query: QuerySettings,
        rerank: RerankSettings,
        deleted: DeletedLookup | None = None,
        images: PageImageSource | None = None,
    ) -> None:
        self._store = store
        self._deleted = deleted
        self._images = images
        self._embeddings = embeddings
        self._rerankers = rerankers
        self.catalog = catalog
        self._models = models
        self._query = query
        self._rerank = rerank
        # Query vectors carry term frequencies; they do not depend on the average length.
        self._bm25 = Bm25Encoder(avg_len=100.0)

    async def run(self, collections: list[CollectionRecord], req: QueryRequest) -> QueryResponse:
        """Recall, rerank, cut off and order; never hides what the rerank stage did."""
        with span(
            "query",
            collections=[c.name for c in collections],
            mode=req.mode.value,
            top_k=req.top_k,
            top_n=req.top_n,
        ) as current:
            out = await self._run(collections, req)
            current.set_attribute("rerank.status", out.rerank.status)
            current.set_attribute("results", len(out.results))
            return out

    async def _run(self, collections: list[CollectionRecord], req: QueryRequest) -> QueryResponse:
        started = time.perf_counter()
        first = collections[0]
        for other in collections[1:]:
            if (other.embedding_model, other.dimension) != (first.embedding_model, first.dimension):
                raise InvalidInput(
                    f"collections {first.name!r} and {other.name!r} use different embedding "
                    "models; query them separately",
                    code="mixed_embedding_models",
                )
        top_k = req.top_k or self._query.top_k
        top_n = req.top_n or min(self._query.top_n, top_k)
        if top_n > top_k:
            raise InvalidInput(f"top_n ({top_n}) must not exceed top_k ({top_k})")
        if top_k > self._query.max_top_k:
            raise InvalidInput(f"top_k ({top_k}) is over the limit of {self._query.max_top_k}")
        rerank_model = req.rerank_model or first.rerank_model or self._models.rerank_model
        plan = resolve_plan(req, first.policy, self._query, self._rerank, top_k=top_k)
        reranking = req.rerank and self._rerank.enabled and plan.depth > 0
        if reranking and req.rerank_model is not None:
            await self.catalog.check(rerank_model)
        recall = await self._recall(collections, req, top_k, plan)
        hits = [hit for _, hit in recall.hits]
        t_rerank = time.perf_counter()
        run = _RerankRun()
        if reranking and hits:
            with span("query.rerank", model=rerank_model, candidates=plan.depth) as stage:
                run = await self._rerank_stage(rerank_model, req.query, hits[: plan.depth])
                if isinstance(run.scores, RerankFailure):
                    stage.set_attribute("error.code", run.scores.status.value)
        rerank_ms = (time.perf_counter() - t_rerank) * 1000
        with span("query.cutoff", top_n=top_n, policy=plan.final.value) as cutting:
            decision = finalize_ranking(
                [h.score for h in hits],
                run.scores,
                top_n=top_n,
                min_score=resolve_min_score(
                    req.min_score,
                    first.min_score,
                    self._rerank.model_min_scores.get(rerank_model, self._rerank.min_score),
                ),
                policy=plan.final,
                fusion=plan.fusion,
                on_error=OnRerankError(req.on_rerank_error or self._rerank.on_error),
                model=rerank_model if reranking else None,
                skip_reason=_skip_reason(req.rerank, self._rerank.enabled),
                autocut_jumps=plan.autocut,
            )
            cutting.set_attribute("dropped", decision.outcome.dropped_by_cutoff)
            cutting.set_attribute("kept", len(decision.ranked))
        results = []
        for rank, item in enumerate(decision.ranked, start=1):
            coll, hit = recall.hits[item.index]
            p = hit.payload
            results.append(
                QueryHit(
                    rank=rank,
                    collection=coll,
                    chunk_id=hit.id,
                    document_id=p.document_id,
                    text=p.text,
                    title=p.title,
                    source=p.source,
                    page=p.page,
                    char_start=p.char_start,
                    char_end=p.char_end,
                    metadata=p.metadata,
                    scores=HitScores(
                        dense=hit.scores.dense,
                        sparse=hit.scores.sparse,
                        fused=hit.scores.fused,
                        late=hit.scores.late,
                        rerank=item.rerank_score,
                        final=item.final_score,
                    ),
                    image=_hit_image(coll, p.document_id, p.image),
                )
            )
        out = decision.outcome
        scored = len(run.scores) if isinstance(run.scores, list) else 0
        return QueryResponse(
            query=req.query,
            results=results,
            rerank=RerankReport(
                status=out.status.value,
                reason=out.reason or run.reason,
                model=out.model,
                candidates=out.candidates,
                dropped_by_cutoff=out.dropped_by_cutoff,
                min_score=out.min_score,
                final=plan.final.value,
                depth=scored,
                requested_depth=plan.depth if reranking else 0,
                cached=run.cached,
                dropped_by_autocut=out.dropped_by_autocut,
                autocut=out.autocut,
            ),
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
        texts = [_rerank_text(h) for h in hits]
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
                self._images if model in self._rerank.image_models else None,
            )
            result = await self._rerankers.get(model).rerank(query, documents)
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
        return run

    async def _recall(
        self, collections: list[CollectionRecord], req: QueryRequest, top_k: int, plan: QueryPlan
    ) -> _Recall:
        first = collections[0]
        mode = req.mode
        dense: list[float] | None = None
        embed_tokens: int | None = None
        t0 = time.perf_counter()
        with span("query.embed", model=first.embedding_model, mode=mode.value):
            # Token vectors only when every collection has the same late-interaction model:
            # late-fused scores do not compare with plain recall scores across collections.
            late_models = {(c.late_model, c.late_dimension) for c in collections}
            late_model, late_dimension = next(iter(late_models))
            use_late = req.late and late_model is not None and len(late_models) == 1
            calls: list[Awaitable[tuple[Any, int]]] = []
            if mode in (QueryMode.HYBRID, QueryMode.DENSE):
                prefix = self._query.query_prefixes.get(first.embedding_model, "")
                calls.append(
                    self._embeddings.embed(
                        [prefix + req.query], model=first.embedding_model, dimension=first.dimension
                    )
                )
            if use_late:
                assert late_model is not None
                calls.append(
                    self._embeddings.embed_tokens(
                        [req.query], model=late_model, dimension=late_dimension
                    )
                )
            answers = await asyncio.gather(*calls)
            late = answers.pop()[0][0] if use_late else None
            if answers:
                vectors, embed_tokens = answers[0]
                dense = vectors[0]
            sparse = self._bm25.embed_query(req.query) if mode is not QueryMode.DENSE else None
        t1 = time.perf_counter()
        query = HybridQuery(
            dense=dense,
            sparse=sparse,
            mode=mode,
            limit=top_k,
            rrf_k=plan.rrf_k,
            weights=plan.weights,
            filter=to_chunk_filter(req.filter),
            late=late,
            late_fusion=LateFusion(
                recall=_or(req.late_recall_weight, self._query.late_recall_weight),
                late=plan.late_weight,
                k=self._query.late_rrf_k,
            ),
        )
        with span("query.recall", collections=[c.name for c in collections], limit=top_k) as stage:
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
            hits=merged[:top_k],
            embed_ms=(t1 - t0) * 1000,
            recall_ms=(t2 - t1) * 1000,
            embed_tokens=embed_tokens,
        )


def _skip_reason(requested: bool, enabled: bool) -> str:
    if not requested:
        return "reranking is off"
    return "rerank_depth is 0" if enabled else "reranking is disabled"


async def rerank_documents(
    hits: list[ScoredHit], images: PageImageSource | None
) -> list[RerankDocument]:
    """Each hit's text; with ``images`` (an image-capable model) image hits carry their page.

    A text-only model gets the OCR text alone; a page that cannot be loaded is sent as
    text too (logged by the source).
    """
    texts = [_rerank_text(h) for h in hits]
    if images is None:
        return [RerankDocument(text=t) for t in texts]
    refs = [h.payload.image for h in hits]
    loaded = iter(await asyncio.gather(*(images.load(ref) for ref in refs if ref is not None)))
    out: list[RerankDocument] = []
    for text, ref in zip(texts, refs, strict=True):
        raw = next(loaded) if ref is not None else None
        out.append(RerankDocument(text=text, images=(raw,) if raw else ()))
    return out


def _hit_image(collection: str, document_id: str, ref: ImageRef | None) -> HitImage | None:
    if ref is None:
        return None
    return HitImage(
        blob_id=ref.blob_id,
        page=ref.page,
        width=ref.width,
        height=ref.height,
        ocr_confidence=ref.ocr_confidence,
        ocr_min_confidence=ref.ocr_min_confidence,
        url=image_url(collection, document_id, ref.page),
    )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _rerank_text(hit: ScoredHit) -> str:
    title, text = hit.payload.title, hit.payload.text
    # The cross-encoder reads the title too (BEIR practice); skip it when the text has it.
    return f"{title}\n{text}" if title and title not in text[: len(title) + 8] else text
