"""The query route's schemas onto the read side's types and back: mapping only."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from core.errors import InvalidInput
from core.types import AnyOf, ChunkFilter, Condition, FieldEquals, ImageRef, Range
from query import QueryResult, QuerySpec
from services.api.query_images import image_url
from services.api.schemas_query import (
    DocumentTrace,
    HitImage,
    HitScores,
    QueryFilter,
    QueryHit,
    QueryRequest,
    QueryResponse,
    RangeBounds,
    RerankReport,
)

__all__ = ["to_chunk_filter", "to_response", "to_spec"]

# Every request field but the filter goes over as it is (same names: a test keeps them so).
_SPEC_FIELDS = frozenset(f.name for f in fields(QuerySpec)) - {"filter"}


def to_spec(req: QueryRequest) -> QuerySpec:
    """The request as a domain query spec."""
    values = {name: getattr(req, name) for name in _SPEC_FIELDS}
    return QuerySpec(**values, filter=to_chunk_filter(req.filter))


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


def to_response(result: QueryResult) -> QueryResponse:
    """The engine's result as the API's response body."""
    results = []
    for item in result.hits:
        hit, p = item.hit, item.hit.payload
        results.append(
            QueryHit(
                rank=item.rank,
                collection=item.collection,
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
                image=_hit_image(item.collection, p.document_id, p.image),
            )
        )
    out, plan = result.decision.outcome, result.plan
    return QueryResponse(
        query=result.query,
        results=results,
        rerank=RerankReport(
            status=out.status.value,
            reason=result.reason,
            model=out.model,
            candidates=out.candidates,
            dropped_by_cutoff=out.dropped_by_cutoff,
            min_score=out.min_score,
            final=plan.rank.final,
            depth=result.scored,
            requested_depth=plan.rank.rerank_depth if plan.reranking else 0,
            cached=result.cached,
            dropped_by_autocut=out.dropped_by_autocut,
            autocut=out.autocut,
            query_truncated=result.query_truncated,
        ),
        timings_ms=result.timings_ms,
        usage=result.usage,
        explain=None
        if result.explanation is None
        else [DocumentTrace.model_validate(asdict(t)) for t in result.explanation],
    )


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
