"""Request and response bodies of the Sieve API."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from core.query_policy import QueryPolicy
from core.types import API_COLLECTION_NAME_PATTERN

__all__ = [
    "CollectionCreateRequest",
    "CollectionResponse",
    "CollectionUpdateRequest",
    "DocumentResponse",
    "DocumentsPageResponse",
    "EvaluationReport",
    "IngestAcceptedResponse",
    "IngestWaitResponse",
    "JobResponse",
    "ReindexRequest",
    "ReindexStatus",
    "StoragePerChunk",
    "SweepRow",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CollectionCreateRequest(_Strict):
    """Create a collection; the embedding model's dimension is probed from the hub and pinned."""

    # At most 64 characters: with the tenant's name it stays a valid store name.
    name: Annotated[str, Field(pattern=API_COLLECTION_NAME_PATTERN)]
    embedding_model: Annotated[str | None, Field(min_length=1, max_length=256)] = None
    hybrid: bool = True
    rerank_model: Annotated[str | None, Field(min_length=1, max_length=256)] = None
    min_score: Annotated[float | None, Field(ge=0, le=1)] = None
    # Store each chunk's token vectors and rescore recall by MaxSim (costs a second
    # embedding pass at ingest and, per ~190-token chunk, ~75 KB int8 + ~300 KB float32 on
    # disk); the model defaults to SIEVE_MODEL_LATE_MODEL.
    late_interaction: bool = False
    late_model: str | None = None
    # Documents uploaded without an expiry of their own expire this long after their upload
    # (bounded by SIEVE_API_MAX_TTL_S; README, "Expiry").
    ttl_s: Annotated[float | None, Field(gt=0)] = None


class CollectionUpdateRequest(_Strict):
    """Change the settings of a collection that are safe to change after its creation; a
    field left out keeps its value (README, "Expiry").

    ``ttl_s``: the expiry later uploads without one of their own get (``null``: none);
    documents already stored keep the ``expires_at`` their upload gave them.
    """

    ttl_s: Annotated[float | None, Field(gt=0)] = None


class ReindexRequest(_Strict):
    """Re-index a collection from its stored chunk texts with other model fields.

    Absent fields keep the collection's value; at least one must change.
    """

    embedding_model: Annotated[str | None, Field(min_length=1, max_length=256)] = None
    late_interaction: bool | None = None
    late_model: Annotated[str | None, Field(min_length=1, max_length=256)] = None


class ReindexStatus(BaseModel):
    """A re-index under way: its job and the job's state."""

    job_id: str
    state: str


class StoragePerChunk(BaseModel):
    """Estimated bytes one chunk's vectors take (payload and indexes not counted)."""

    dense_bytes: int
    late_tokens: float | None = None
    late_bytes_float32: int | None = None
    late_bytes_int8: int | None = None


class CollectionResponse(BaseModel):
    """A collection and its counts."""

    name: str
    embedding_model: str
    dimension: int
    hybrid: bool
    rerank_model: str | None
    min_score: float | None
    created_at: float
    # The query policy stored by `sieve tune --apply` / PUT .../policy (None: defaults).
    policy: QueryPolicy | None = None
    late_interaction: bool = False
    late_model: str | None = None
    late_dimension: int | None = None
    ttl_s: float | None = None
    documents: int | None = None
    documents_by_status: dict[str, int] | None = None
    chunks: int | None = None
    storage_per_chunk: StoragePerChunk | None = None
    # While a re-index builds the next generation (the fields above stay the serving ones).
    reindex: ReindexStatus | None = None


class IngestAcceptedResponse(BaseModel):
    """202: the documents are saved and queued."""

    job_id: str
    documents: list[str]
    unchanged: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)


class DocumentResponse(BaseModel):
    """A document's state."""

    id: str
    version: int
    status: str
    job_id: str
    content_hash: str | None
    source: str | None
    title: str | None
    size: int
    pages: int | None
    chunk_count: int
    # Of chunk_count: embedded for this version, and taken from the version before
    # (only the chunks whose text changed are embedded again).
    chunks_embedded: int = 0
    chunks_reused: int = 0
    error: dict[str, str] | None
    metadata: dict[str, Any]
    updated_at: float
    # ISO-8601 UTC; None: it never expires. ``expired``: the time passed and queries no
    # longer return it; the retention sweep deletes it soon.
    expires_at: str | None = None
    expired: bool = False


class DocumentsPageResponse(BaseModel):
    """A page of documents."""

    documents: list[DocumentResponse]
    total: int
    offset: int
    limit: int


class JobResponse(BaseModel):
    """A job's state, progress and per-document states."""

    id: str
    collection: str
    kind: str
    state: str
    counts: dict[str, int]
    total: int
    # Each document's state in the job (``superseded``: a newer upload took over); absent
    # for jobs of over 1,000 documents, whose counts say the same at O(1).
    documents: dict[str, str] | None
    errors: dict[str, dict[str, str]] = Field(default_factory=dict)
    created_at: float
    finished_at: float | None
    cancelled: bool


class IngestWaitResponse(IngestAcceptedResponse):
    """``?wait=true``: what the 202 says, plus the job as ``GET /v1/jobs/{id}`` shows it
    (terminal with 200; as it is now with 202 when ``timeout_s`` passed first)."""

    job: JobResponse


class SweepRow(BaseModel):
    """One ``min_score`` threshold of the sweep: results and relevant results kept."""

    model_config = ConfigDict(allow_inf_nan=False)

    min_score: float
    kept: int
    relevant_kept: int


class EvaluationReport(BaseModel):
    """What ``sieve eval`` measured on a collection (its ``--json`` report), as stored."""

    # A NaN stored here could not be sent back as JSON: refuse it (a 400 naming the field).
    model_config = ConfigDict(allow_inf_nan=False)

    collection: str
    queries: int
    metrics: dict[str, dict[str, float]]
    latency_ms: dict[str, dict[str, float]]
    rerank_statuses: dict[str, int] = Field(default_factory=dict)
    min_score_sweep: list[SweepRow] = Field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = Field(default_factory=list)
    saved_at: float | None = None
