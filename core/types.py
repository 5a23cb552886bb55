"""Domain types every stage agrees on: collections, chunks, filters, scored hits."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    field_validator,
    model_validator,
)

__all__ = [
    "API_COLLECTION_NAME_PATTERN",
    "COLLECTION_NAME_PATTERN",
    "INT64_MAX",
    "INT64_MIN",
    "AnyOf",
    "ChunkFilter",
    "ChunkPayload",
    "ChunkPoint",
    "Condition",
    "Distance",
    "FieldEquals",
    "FusionWeights",
    "HybridQuery",
    "ImageRef",
    "Int64",
    "LateFusion",
    "LegScores",
    "MultiVector",
    "QueryMode",
    "Range",
    "ScoredHit",
    "SparseVec",
    "StoreCollectionSpec",
]

COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,127}$"
# What a caller may name a collection: the store name joins it to the tenant's (at most 48
# characters), so 64 keeps the pair inside the store's 128.
API_COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$"
# Qdrant keeps payload integers as signed 64-bit; a larger one overflowed in the store.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
_PAYLOAD_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Distance(StrEnum):
    """Dense vector similarity."""

    COSINE = "cosine"
    DOT = "dot"
    EUCLID = "euclid"


class QueryMode(StrEnum):
    """Which recall legs a query runs."""

    HYBRID = "hybrid"
    DENSE = "dense"
    SPARSE = "sparse"


class StoreCollectionSpec(_Frozen):
    """What the chunk store needs to create a collection."""

    name: Annotated[str, Field(pattern=COLLECTION_NAME_PATTERN)]
    dense_size: Annotated[int, Field(gt=0, le=65536)]
    distance: Distance = Distance.COSINE
    sparse: bool = True
    # Token vectors for late interaction (MaxSim): their size, None when the collection has none.
    late_size: Annotated[int | None, Field(gt=0, le=65536)] = None


class SparseVec(_Frozen):
    """A sparse vector: parallel lists of term ids and weights."""

    indices: list[int]
    values: list[float]

    @model_validator(mode="after")
    def _same_length(self) -> SparseVec:
        if len(self.indices) != len(self.values):
            raise ValueError("sparse vector indices and values differ in length")
        return self


class ImageRef(_Frozen):
    """The page image a chunk's text was read from by OCR.

    ``blob_id`` is the blob store key (sha256) of the page image stored at ingest, which
    ``GET .../documents/{id}/image?page=N`` returns and the reranker sends; ``page`` is
    1-based (1 for a single image); ``width``/``height`` are that image's pixels and
    ``mime`` its type. Chunks indexed before page images were stored have no ``mime``:
    their ``blob_id`` is the upload's, which is never decoded at query time.
    """

    blob_id: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    page: Annotated[int, Field(ge=1)] = 1
    width: Annotated[int, Field(gt=0)]
    height: Annotated[int, Field(gt=0)]
    mime: Annotated[str | None, Field(pattern=r"^image/(png|jpeg|gif|webp)$")] = None
    # Mean and lowest recogniser confidence of the OCR lines in this chunk.
    ocr_confidence: Annotated[float | None, Field(ge=0, le=1)] = None
    ocr_min_confidence: Annotated[float | None, Field(ge=0, le=1)] = None


class MultiVector(_Frozen):
    """One text's token vectors, packed for the wire: ``count`` rows of ``dim`` float16s.

    ``data`` is the row-major little-endian float16 bytes, base64-encoded. Stored as float32
    (and int8 in the engine's quantized copy); float16 halves the task messages that carry
    points from the workers to the store, and MaxSim over unit vectors does not feel it.
    """

    dim: Annotated[int, Field(gt=0, le=65536)]
    count: Annotated[int, Field(gt=0, le=65536)]
    data: str

    @model_validator(mode="after")
    def _size_fits(self) -> MultiVector:
        raw = self.dim * self.count * 2
        if len(self.data) != 4 * ((raw + 2) // 3):
            raise ValueError(f"multivector data does not hold {self.count} x {self.dim} float16s")
        return self


class ChunkPayload(_Frozen):
    """The payload stored with every chunk point (architecture.md, data model)."""

    document_id: str
    content_hash: str
    chunk_no: Annotated[int, Field(ge=0)]
    text: str
    title: str | None = None
    source: str | None = None
    page: int | None = None
    char_start: Annotated[int, Field(ge=0)] = 0
    char_end: Annotated[int, Field(ge=0)] = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    image: ImageRef | None = None


class ChunkPoint(_Frozen):
    """One chunk as written to the store: id, dense vector, optional BM25 vector, payload,
    and its token vectors when the collection has late interaction."""

    id: str
    dense: list[float]
    sparse: SparseVec | None = None
    payload: ChunkPayload
    late: MultiVector | None = None


# ---------------------------------------------------------------- filters


class _Cond(_Frozen):
    key: str

    @field_validator("key")
    @classmethod
    def _valid_key(cls, key: str) -> str:
        if not _PAYLOAD_KEY.match(key):
            raise ValueError(
                f"invalid payload key {key!r}: use dotted identifiers like metadata.lang"
            )
        return key


class FieldEquals(_Cond):
    """``key`` equals ``value`` (keyword, integer or boolean)."""

    kind: Literal["eq"] = "eq"
    value: str | Int64 | bool


class AnyOf(_Cond):
    """``key`` equals one of ``values``."""

    kind: Literal["any"] = "any"
    values: Annotated[list[str] | list[Int64], Field(min_length=1)]


class Range(_Cond):
    """Numeric or datetime range on ``key``; at least one bound."""

    kind: Literal["range"] = "range"
    gt: FiniteFloat | datetime | None = None
    gte: FiniteFloat | datetime | None = None
    lt: FiniteFloat | datetime | None = None
    lte: FiniteFloat | datetime | None = None

    @model_validator(mode="after")
    def _has_bound(self) -> Range:
        bounds = [b for b in (self.gt, self.gte, self.lt, self.lte) if b is not None]
        if not bounds:
            raise ValueError("a range needs at least one of gt, gte, lt, lte")
        kinds = {isinstance(b, datetime) for b in bounds}
        if len(kinds) > 1:
            raise ValueError("a range mixes numbers and datetimes")
        return self

    @property
    def is_datetime(self) -> bool:
        """True when the bounds are datetimes."""
        return any(isinstance(b, datetime) for b in (self.gt, self.gte, self.lt, self.lte))


Condition = Annotated[FieldEquals | AnyOf | Range, Field(discriminator="kind")]


class ChunkFilter(_Frozen):
    """All of ``must`` hold (AND). An empty filter matches everything."""

    must: list[Condition] = Field(default_factory=list)


# ---------------------------------------------------------------- queries


class FusionWeights(_Frozen):
    """Per-leg weights of weighted reciprocal rank fusion."""

    dense: Annotated[float, Field(ge=0)] = 2.0
    sparse: Annotated[float, Field(ge=0)] = 1.0


class LateFusion(_Frozen):
    """How the late-interaction (MaxSim) rank joins the recall rank: weighted RRF.

    Measured outside Sieve (hybrid top-50, k=2): SciFact 1:1 +0.030 nDCG@10, 2:1 +0.011;
    a held-out argument corpus 1:1 -0.052, 2:1 -0.012. So the default leans on recall.
    ``late = 0`` keeps the recall order and only reports the MaxSim score.
    """

    recall: Annotated[float, Field(ge=0)] = 2.0
    late: Annotated[float, Field(ge=0)] = 1.0
    k: Annotated[float, Field(gt=0)] = 2.0


class HybridQuery(_Frozen):
    """A recall request against one collection."""

    dense: list[float] | None = None
    sparse: SparseVec | None = None
    mode: QueryMode = QueryMode.HYBRID
    limit: Annotated[int, Field(gt=0, le=1000)] = 50
    prefetch_limit: Annotated[int | None, Field(gt=0, le=5000)] = None
    rrf_k: Annotated[float, Field(gt=0)] = 5.0
    weights: FusionWeights = Field(default_factory=FusionWeights)
    filter: ChunkFilter | None = None
    # The query's token vectors: when given, the store rescores the recalled candidates by
    # MaxSim in the same call and fuses that rank with the recall rank (``late_fusion``).
    late: MultiVector | None = None
    late_fusion: LateFusion = Field(default_factory=LateFusion)

    @model_validator(mode="after")
    def _legs_present(self) -> HybridQuery:
        if self.mode in (QueryMode.HYBRID, QueryMode.DENSE) and self.dense is None:
            raise ValueError(f"mode {self.mode.value} needs a dense vector")
        if self.mode in (QueryMode.HYBRID, QueryMode.SPARSE) and self.sparse is None:
            raise ValueError(f"mode {self.mode.value} needs a sparse vector")
        return self

    @property
    def leg_limit(self) -> int:
        """How many candidates each leg recalls before fusion."""
        return self.prefetch_limit or self.limit


class LegScores(_Frozen):
    """Each recall leg's raw score and 1-based rank for a hit (None: the leg missed it)."""

    dense: float | None = None
    dense_rank: int | None = None
    sparse: float | None = None
    sparse_rank: int | None = None
    fused: float | None = None
    late: float | None = None


class ScoredHit(_Frozen):
    """A recalled chunk with its final recall score and every leg's score."""

    id: str
    score: float
    scores: LegScores
    payload: ChunkPayload
