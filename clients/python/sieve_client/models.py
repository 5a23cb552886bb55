"""The Sieve API's request and response bodies, as the client sees them.

They mirror the server's OpenAPI schema field for field (a test compares them with the live
app's ``/openapi.json``). Response models ignore fields they do not know, so a newer server
does not break an older client; request models forbid unknown fields, like the server.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat

__all__ = [
    "COLLECTION_NAME_PATTERN",
    "CollectionCreateRequest",
    "CollectionResponse",
    "CollectionUpdateRequest",
    "DocStatus",
    "DocumentDeletedResponse",
    "DocumentResponse",
    "DocumentsPageResponse",
    "EvaluationReport",
    "FeedbackRequest",
    "FeedbackResponse",
    "HitImage",
    "HitScores",
    "IngestAcceptedResponse",
    "IngestWaitResponse",
    "JobResponse",
    "Judgment",
    "MetadataCondition",
    "ModelInfo",
    "MultiQueryRequest",
    "PolicyResponse",
    "QueryFilter",
    "QueryHit",
    "QueryLogConfig",
    "QueryLogEntriesResponse",
    "QueryLogEntry",
    "QueryLogRequest",
    "QueryLogResponse",
    "QueryMode",
    "QueryPolicy",
    "QueryRequest",
    "QueryResponse",
    "RangeBounds",
    "ReindexRequest",
    "ReindexStatus",
    "RerankReport",
    "RestoreResponse",
    "SnapshotResponse",
    "StoragePerChunk",
    "SweepRow",
    "WebhookCreateRequest",
    "WebhookCreatedResponse",
    "WebhookDeliveriesResponse",
    "WebhookEvent",
    "WebhookResponse",
    "WebhooksResponse",
]

COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$"
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
Int64 = Annotated[int, Field(ge=_INT64_MIN, le=_INT64_MAX)]
_Text = Annotated[str, Field(max_length=1024)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


class QueryMode(StrEnum):
    """Which recall legs a query runs."""

    HYBRID = "hybrid"
    DENSE = "dense"
    SPARSE = "sparse"


class DocStatus(StrEnum):
    """A document's life: queued, then parsed, embedded, written, and indexed or failed."""

    QUEUED = "queued"
    PARSING = "parsing"
    EMBEDDING = "embedding"
    WRITING = "writing"
    INDEXED = "indexed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DELETED = "deleted"


# ---------------------------------------------------------------- collections


class CollectionCreateRequest(_Request):
    """Create a collection; the embedding model's dimension is probed from the hub and pinned."""

    name: Annotated[str, Field(pattern=COLLECTION_NAME_PATTERN)]
    embedding_model: Annotated[str | None, Field(min_length=1, max_length=256)] = None
    hybrid: bool = True
    rerank_model: Annotated[str | None, Field(min_length=1, max_length=256)] = None
    min_score: Annotated[float | None, Field(ge=0, le=1)] = None
    late_interaction: bool = False
    late_model: str | None = None
    # Documents uploaded without an expiry of their own expire this long after upload.
    ttl_s: Annotated[float | None, Field(gt=0)] = None


class CollectionUpdateRequest(_Request):
    """Change a collection's settings that are safe to change after creation (``ttl_s``:
    the expiry later uploads get; ``None`` clears it; stored documents keep theirs)."""

    ttl_s: Annotated[float | None, Field(gt=0)] = None


class QueryPolicy(_Request):
    """How a collection's queries are ranked; None means "the server's default"."""

    dense_weight: Annotated[float | None, Field(ge=0, le=100)] = None
    sparse_weight: Annotated[float | None, Field(ge=0, le=100)] = None
    rrf_k: Annotated[float | None, Field(gt=0, le=1000)] = None
    late_weight: Annotated[float | None, Field(ge=0, le=100)] = None
    rerank_depth: Annotated[int | None, Field(ge=0, le=500)] = None
    final: Literal["rerank", "fusion", "window"] | None = None
    fusion_recall_weight: Annotated[float | None, Field(ge=0, le=100)] = None
    fusion_rerank_weight: Annotated[float | None, Field(ge=0, le=100)] = None
    fusion_k: Annotated[float | None, Field(gt=0, le=1000)] = None
    window: Annotated[int | None, Field(ge=1, le=500)] = None
    autocut: Annotated[int | None, Field(ge=0, le=10)] = None
    provenance: dict[str, Any] = Field(default_factory=dict)


class ReindexRequest(_Request):
    """Re-index a collection from its stored chunk texts; absent fields keep their value."""

    embedding_model: Annotated[str | None, Field(min_length=1, max_length=256)] = None
    late_interaction: bool | None = None
    late_model: Annotated[str | None, Field(min_length=1, max_length=256)] = None


class ReindexStatus(_Response):
    """A re-index under way: its job and the job's state."""

    job_id: str
    state: str


class StoragePerChunk(_Response):
    """Estimated bytes one chunk's vectors take (payload and indexes not counted)."""

    dense_bytes: int
    late_tokens: float | None = None
    late_bytes_float32: int | None = None
    late_bytes_int8: int | None = None


class CollectionResponse(_Response):
    """A collection and its counts (the counts only when asked for one collection)."""

    name: str
    embedding_model: str
    dimension: int
    hybrid: bool
    rerank_model: str | None
    min_score: float | None
    created_at: float
    policy: QueryPolicy | None = None
    late_interaction: bool = False
    late_model: str | None = None
    late_dimension: int | None = None
    ttl_s: float | None = None
    documents: int | None = None
    documents_by_status: dict[str, int] | None = None
    chunks: int | None = None
    storage_per_chunk: StoragePerChunk | None = None
    reindex: ReindexStatus | None = None


# ---------------------------------------------------------------- documents and jobs


class IngestAcceptedResponse(_Response):
    """202: the documents are saved and queued."""

    job_id: str
    documents: list[str]
    unchanged: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)


class DocumentResponse(_Response):
    """A document's state at its current version (every accepted change takes a new one)."""

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
    # Of chunk_count: embedded for this version / taken from the version before.
    chunks_embedded: int = 0
    chunks_reused: int = 0
    error: dict[str, str] | None
    metadata: dict[str, Any]
    updated_at: float
    # ISO-8601 UTC (None: never); ``expired``: queries no longer return it, the sweep
    # deletes it soon.
    expires_at: str | None = None
    expired: bool = False


class DocumentsPageResponse(_Response):
    """A page of documents."""

    documents: list[DocumentResponse]
    total: int
    offset: int
    limit: int


class DocumentDeletedResponse(_Response):
    """202: the document is marked deleted; its chunks leave the store shortly."""

    document_id: str
    status: str


class JobResponse(_Response):
    """A job's state, progress and per-document states."""

    id: str
    collection: str
    kind: str
    state: str
    counts: dict[str, int]
    total: int
    # Each document's state in the job (``superseded``: a newer upload took over); None for
    # jobs of over 1,000 documents, whose counts say the same.
    documents: dict[str, str] | None
    errors: dict[str, dict[str, str]] = Field(default_factory=dict)
    created_at: float
    finished_at: float | None
    cancelled: bool

    @property
    def finished(self) -> bool:
        """True once no document of the job is queued or in progress."""
        return self.state not in ("queued", "running")


# ---------------------------------------------------------------- query


class IngestWaitResponse(IngestAcceptedResponse):
    """An upload sent with ``wait=True``: the 202's fields plus the job, terminal (HTTP 200)
    or as it was when ``timeout_s`` passed (HTTP 202; ``job.finished_at`` is None)."""

    job: JobResponse


class RangeBounds(_Request):
    """A numeric or datetime range on a metadata field."""

    gt: FiniteFloat | datetime | None = None
    gte: FiniteFloat | datetime | None = None
    lt: FiniteFloat | datetime | None = None
    lte: FiniteFloat | datetime | None = None


MetadataCondition = (
    _Text
    | Int64
    | bool
    | Annotated[list[_Text], Field(max_length=1000)]
    | Annotated[list[Int64], Field(max_length=1000)]
    | RangeBounds
)


class QueryFilter(_Request):
    """Restrict recall: all given conditions must hold."""

    document_ids: Annotated[list[_Text] | None, Field(min_length=1, max_length=10_000)] = None
    source: _Text | Annotated[list[_Text], Field(max_length=1000)] | None = None
    page: Int64 | RangeBounds | None = None
    metadata: Annotated[dict[str, MetadataCondition] | None, Field(max_length=64)] = None


class QueryRequest(_Request):
    """``POST /v1/collections/{name}/query``."""

    query: Annotated[str, Field(min_length=1, max_length=8192)]
    top_k: Annotated[int | None, Field(ge=1, le=500)] = None
    top_n: Annotated[int | None, Field(ge=1, le=500)] = None
    min_score: Annotated[float | None, Field(ge=0, le=1)] = None
    filter: QueryFilter | None = None
    mode: QueryMode = QueryMode.HYBRID
    rerank: bool = True
    rerank_model: Annotated[str | None, Field(max_length=256)] = None
    rerank_depth: Annotated[int | None, Field(ge=0, le=500)] = None
    final: Literal["rerank", "fusion", "window"] | None = None
    on_rerank_error: Literal["open", "fail"] | None = None
    autocut: Annotated[int | None, Field(ge=0, le=10)] = None
    late: bool = True
    late_weight: Annotated[float | None, Field(ge=0, le=100)] = None
    late_recall_weight: Annotated[float | None, Field(ge=0, le=100)] = None
    explain: bool = False
    explain_documents: Annotated[
        list[Annotated[str, Field(max_length=1024)]] | None, Field(min_length=1, max_length=100)
    ] = None


class MultiQueryRequest(QueryRequest):
    """``POST /v1/query``: one query over several collections sharing an embedding model."""

    collections: Annotated[
        list[Annotated[str, Field(pattern=COLLECTION_NAME_PATTERN)]],
        Field(min_length=1, max_length=32),
    ]


class HitScores(_Response):
    """Every stage's score for a hit (None where that stage did not score it)."""

    dense: float | None
    sparse: float | None
    fused: float | None
    late: float | None = None
    rerank: float | None
    final: float


class HitImage(_Response):
    """The page image a hit's text was read from by OCR (``url`` serves it)."""

    blob_id: str
    page: int
    width: int
    height: int
    ocr_confidence: float | None
    ocr_min_confidence: float | None
    url: str


class QueryHit(_Response):
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


class RerankReport(_Response):
    """What the rerank stage did (``status`` is ``ok`` unless it failed or was skipped)."""

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
    query_truncated: bool = False


class DocumentTrace(_Response):
    """Where one document went in a query (``explain``): recall legs, rerank, cut, rank."""

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


class QueryResponse(_Response):
    """Ranked results, the rerank report, per-stage timings and usage."""

    query: str
    results: list[QueryHit]
    rerank: RerankReport
    timings_ms: dict[str, float]
    usage: dict[str, int | None]
    explain: list[DocumentTrace] | None = None


# ---------------------------------------------------------------- policy and feedback


class PolicyResponse(_Response):
    """The collection's stored policy (None: the server's defaults)."""

    name: str
    policy: QueryPolicy | None


class FeedbackRequest(_Request):
    """One judgment: was ``document_id`` relevant to ``query``?"""

    query: Annotated[str, Field(min_length=1, max_length=8192)]
    document_id: Annotated[str, Field(min_length=1, max_length=512)]
    relevant: bool


class Judgment(_Response):
    """One user's judgment of one document for one query."""

    query: str
    document_id: str
    relevant: bool
    at: float = 0.0


class FeedbackResponse(_Response):
    """How many judgments the collection holds; after a GET, a page of them and the cursor
    of the next page (None: the last one)."""

    name: str
    count: int
    judgments: list[Judgment] = Field(default_factory=list)
    next_cursor: str | None = None


# ---------------------------------------------------------------- query log


class QueryLogRequest(_Request):
    """Turn a collection's query log on: keep ``sample_rate`` of its queries, at most
    ``max_entries`` distinct texts for ``ttl_s`` seconds (None: the server's defaults)."""

    sample_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    max_entries: Annotated[int | None, Field(ge=1)] = None
    ttl_s: Annotated[int | None, Field(ge=1)] = None


class QueryLogConfig(_Response):
    """A collection's query log: which share of queries it keeps, how many, how long."""

    sample_rate: Annotated[float, Field(ge=0.0, le=1.0)]
    max_entries: Annotated[int, Field(ge=1)]
    ttl_s: Annotated[int, Field(ge=1)]


class QueryLogResponse(_Response):
    """The collection's query log: its config (None: off) and how many entries it holds."""

    name: str
    enabled: bool
    config: QueryLogConfig | None = None
    entries: int = 0


class QueryLogEntry(_Response):
    """One logged query text: when first and last seen, how often, its last ``top_k``."""

    id: str
    query: str
    top_k: int | None = None
    first_at: float
    last_at: float = 0.0
    count: int = 1


class QueryLogEntriesResponse(_Response):
    """A page of logged queries, most recently seen first (``next_offset``: None on the last)."""

    name: str
    total: int
    entries: list[QueryLogEntry]
    next_offset: int | None = None


# ---------------------------------------------------------------- evaluation


class SweepRow(_Response):
    """One ``min_score`` threshold of the sweep: results and relevant results kept."""

    min_score: float
    kept: int
    relevant_kept: int


class EvaluationReport(_Response):
    """What ``sieve eval`` measured on a collection (its ``--json`` report), as stored."""

    collection: str
    queries: int
    metrics: dict[str, dict[str, float]]
    latency_ms: dict[str, dict[str, float]]
    rerank_statuses: dict[str, int] = Field(default_factory=dict)
    min_score_sweep: list[SweepRow] = Field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = Field(default_factory=list)
    saved_at: float | None = None


# ---------------------------------------------------------------- models


class ModelInfo(_Response):
    """One of the hub's models (``GET /v1/models``); other fields the hub sends are kept."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: str = "model"
    owned_by: str | None = None


# ---------------------------------------------------------------- webhooks


class WebhookEvent(StrEnum):
    """The events a webhook subscription can ask for."""

    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"
    DOCUMENT_FAILED = "document.failed"
    REINDEX_COMPLETED = "reindex.completed"
    SNAPSHOT_COMPLETED = "snapshot.completed"


class WebhookCreateRequest(_Request):
    """Where to send events, and which ones (default: every event)."""

    url: Annotated[str, Field(min_length=1, max_length=2048)]
    events: Annotated[list[WebhookEvent], Field(min_length=1, max_length=len(WebhookEvent))] = (
        Field(default_factory=lambda: list(WebhookEvent))
    )
    description: Annotated[str, Field(max_length=256)] = ""


class WebhookResponse(_Response):
    """A subscription as listed (never its secret)."""

    id: str
    collection: str
    url: str
    events: list[WebhookEvent]
    description: str
    created_at: float


class WebhookCreatedResponse(WebhookResponse):
    """A new subscription with its signing secret (``whsec_...``): shown this once."""

    secret: str


class WebhooksResponse(_Response):
    """A collection's subscriptions."""

    webhooks: list[WebhookResponse]


class WebhookDeliveriesResponse(_Response):
    """A page of a subscription's delivery attempts (newest first) and how many are kept."""

    deliveries: list[dict[str, Any]]
    total: int
    offset: int


class SnapshotResponse(_Response):
    """A snapshot (backup) job: running, then completed (``file`` downloads it) or failed."""

    id: str
    collection: str
    state: Literal["running", "completed", "failed"]
    created_at: float
    finished_at: float | None = None
    bytes: int | None = None
    documents: int | None = None
    chunks: int | None = None
    blobs: int | None = None
    skipped: int | None = None
    error: dict[str, str] | None = None
    file: str | None = None


class RestoreResponse(_Response):
    """The collection a restore created (and the re-index it started, if asked to)."""

    collection: str
    documents: int
    chunks: int
    blobs: int
    feedback: int
    evaluation: bool
    reindex_job: str | None = None
