"""Query request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, field_validator

from core.ids import MAX_DOCUMENT_ID_CHARS
from core.types import API_COLLECTION_NAME_PATTERN, Int64, QueryMode

__all__ = [
    "DocumentTrace",
    "HitImage",
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
    # How many of the top_k recalled candidates go to /rerank (default: the collection's
    # policy, else SIEVE_RERANK_DEPTH); 0 skips the call. Under load the server may send
    # fewer, and says so in rerank.reason.
    rerank_depth: Annotated[int | None, Field(ge=0, le=500)] = None
    final: Literal["rerank", "fusion", "window"] | None = None
    on_rerank_error: Literal["open", "fail"] | None = None
    # Cut at this many score jumps of the final scores (Weaviate's autocut); 0: off.
    autocut: Annotated[int | None, Field(ge=0, le=10)] = None
    # Late interaction, on collections that have it: false skips the MaxSim stage; the
    # weights of the recall rank and the MaxSim rank (weighted RRF; late_weight 0 keeps
    # the recall order and only reports scores.late). Defaults: SIEVE_QUERY_LATE_*.
    late: bool = True
    late_weight: Annotated[float | None, Field(ge=0, le=100)] = None
    late_recall_weight: Annotated[float | None, Field(ge=0, le=100)] = None
    # Report where documents went (each recall leg's rank, reranked or past the depth, the
    # rerank score, dropped by min_score / autocut / top_n, the final rank): the returned
    # ones and each named in explain_documents (naming some turns explain on).
    explain: bool = False
    explain_documents: Annotated[list[_Text] | None, Field(min_length=1, max_length=100)] = None

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
    late: float | None = None
    rerank: float | None
    final: float


class HitImage(BaseModel):
    """The page image a hit's text was read from by OCR (``url`` serves it)."""

    blob_id: str
    page: int
    width: int
    height: int
    ocr_confidence: float | None
    ocr_min_confidence: float | None
    url: str


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
    image: HitImage | None = None


class RerankReport(BaseModel):
    """What the rerank stage did; never hidden.

    ``depth``: candidates that got a rerank score (``cached`` of them from the in-process
    cache); ``requested_depth``: how many the request or policy asked for. When load made
    ``depth`` smaller, ``reason`` says so while ``status`` stays ``ok``.
    """

    status: str
    reason: str | None
    model: str | None
    candidates: int
    dropped_by_cutoff: int
    min_score: float | None
    final: str
    depth: int = 0
    requested_depth: int = 0
    cached: int = 0
    dropped_by_autocut: int = 0
    autocut: int | None = None
    # The query was cut to its head to fit the rerank model's pairs (``reason`` says so).
    query_truncated: bool = False


class DocumentTrace(BaseModel):
    """Where one document went in the query (``explain``); its best chunk if several."""

    document_id: str
    outcome: Literal[
        "returned", "not_recalled", "below_top_n", "dropped_by_min_score", "dropped_by_autocut"
    ]
    chunk_id: str | None
    recall_rank: int | None
    dense_rank: int | None
    sparse_rank: int | None
    late_score: float | None
    reranked: bool
    rerank_score: float | None
    ordered_rank: int | None
    final_rank: int | None
    note: str


class QueryResponse(BaseModel):
    """Ranked results, the rerank report, per-stage timings and usage."""

    query: str
    results: list[QueryHit]
    rerank: RerankReport
    timings_ms: dict[str, float]
    usage: dict[str, int | None]
    explain: list[DocumentTrace] | None = None
