"""Query request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, field_validator

from core.ids import MAX_DOCUMENT_ID_CHARS
from core.types import API_COLLECTION_NAME_PATTERN, Int64, QueryMode

__all__ = [
    "HitScores",
    "MultiQueryRequest",
    "QueryFilter",
    "QueryHit",
    "QueryRequest",
    "QueryResponse",
    "RangeBounds",
    "RerankReport",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RangeBounds(_Strict):
    """A numeric or datetime range on a metadata field."""

    # Finite only: NaN or Infinity (which Python's JSON reader accepts) are refused by name.
    gt: FiniteFloat | datetime | None = None
    gte: FiniteFloat | datetime | None = None
    lt: FiniteFloat | datetime | None = None
    lte: FiniteFloat | datetime | None = None


_Text = Annotated[str, Field(max_length=MAX_DOCUMENT_ID_CHARS)]
MetadataCondition = (
    _Text
    | Int64
    | bool
    | Annotated[list[_Text], Field(max_length=1000)]
    | Annotated[list[Int64], Field(max_length=1000)]
    | RangeBounds
)


class QueryFilter(_Strict):
    """Restrict recall: all given conditions must hold."""

    document_ids: Annotated[list[_Text] | None, Field(min_length=1, max_length=10_000)] = None
    source: _Text | Annotated[list[_Text], Field(max_length=1000)] | None = None
    page: Int64 | RangeBounds | None = None
    metadata: Annotated[dict[str, MetadataCondition] | None, Field(max_length=64)] = None


class QueryRequest(_Strict):
    """``POST /v1/collections/{name}/query``."""

    query: Annotated[str, Field(min_length=1, max_length=8192)]
    top_k: Annotated[int | None, Field(ge=1, le=500)] = None
    top_n: Annotated[int | None, Field(ge=1, le=500)] = None
    min_score: Annotated[float | None, Field(ge=0, le=1)] = None
    filter: QueryFilter | None = None
    mode: QueryMode = QueryMode.HYBRID
    rerank: bool = True
    rerank_model: Annotated[str | None, Field(max_length=256)] = None
    final: Literal["rerank", "fusion"] | None = None
    on_rerank_error: Literal["open", "fail"] | None = None

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the query is blank")
        return value


class MultiQueryRequest(QueryRequest):
    """``POST /v1/query``: one query over several collections sharing an embedding model."""

    collections: Annotated[
        list[Annotated[str, Field(pattern=API_COLLECTION_NAME_PATTERN)]],
        Field(min_length=1, max_length=32),
    ]


class HitScores(BaseModel):
    """Every stage's score for a hit (None where that stage did not score it)."""

    dense: float | None
    sparse: float | None
    fused: float | None
    rerank: float | None
    final: float


class QueryHit(BaseModel):
    """One ranked, cited passage."""

    rank: int
    collection: str
    chunk_id: str
    document_id: str
    text: str
    title: str | None
    source: str | None
    page: int | None
    char_start: int
    char_end: int
    metadata: dict[str, Any]
    scores: HitScores


class RerankReport(BaseModel):
    """What the rerank stage did; never hidden."""

    status: str
    reason: str | None
    model: str | None
    candidates: int
    dropped_by_cutoff: int
    min_score: float | None
    final: str


class QueryResponse(BaseModel):
    """Ranked results, the rerank report, per-stage timings and usage."""

    query: str
    results: list[QueryHit]
    rerank: RerankReport
    timings_ms: dict[str, float]
    usage: dict[str, int | None]
