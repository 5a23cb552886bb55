"""The lifecycle's records: collections, documents, jobs, and the states they move through."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidInput
from core.query_policy import QueryPolicy
from indexing.query_log import QueryLogConfig

__all__ = [
    "IN_PROGRESS",
    "JOB_TERMINAL",
    "MAX_STORE_NAME_CHARS",
    "REINDEX_KIND",
    "SUPERSEDED",
    "TERMINAL",
    "CollectionRecord",
    "DocStatus",
    "DocumentRecord",
    "JobRecord",
    "JobState",
    "JobView",
    "ReindexTarget",
    "generation_store_name",
    "store_name_for",
]


class DocStatus(StrEnum):
    """A document's life (architecture.md, data model)."""

    QUEUED = "queued"
    PARSING = "parsing"
    EMBEDDING = "embedding"
    WRITING = "writing"
    INDEXED = "indexed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DELETED = "deleted"


TERMINAL = frozenset({DocStatus.INDEXED, DocStatus.FAILED, DocStatus.CANCELLED, DocStatus.DELETED})
# Claimed by a worker (or the store writer) while in these states.
IN_PROGRESS = frozenset({DocStatus.PARSING, DocStatus.EMBEDDING, DocStatus.WRITING})

# A document's entry in a job ends in one of these: its own terminal states, or
# ``superseded`` when a newer upload of the same document took over before it finished.
SUPERSEDED = "superseded"
JOB_TERMINAL = frozenset({*(s.value for s in TERMINAL), SUPERSEDED})


class JobState(StrEnum):
    """A job's overall state, derived from its documents."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    CANCELLED = "cancelled"
    # A job with no documents of its own (a re-index) that could not finish.
    FAILED = "failed"


# The job kind of a re-index (``indexing.reindex``): its progress is kept apart from the
# per-document entries of ingest jobs.
REINDEX_KIND = "reindex"


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ReindexTarget(_Record):
    """A re-index under way: the generation being built and the model fields it pins."""

    job_id: str
    generation: int
    store: str
    embedding_model: str
    dimension: int
    late_model: str | None = None
    late_dimension: int | None = None
    started_at: float = Field(default_factory=time.time)


class CollectionRecord(_Record):
    """A tenant's collection and what was pinned at creation (or by its last re-index).

    ``store`` is the store collection that serves it: a re-index builds another one and
    switches this pointer, with the model fields, in one atomic change of the record.
    """

    tenant: str
    name: str
    embedding_model: str
    dimension: int
    hybrid: bool = True
    rerank_model: str | None = None
    min_score: float | None = None
    bm25_avg_len: float | None = None
    policy: QueryPolicy | None = None
    late_model: str | None = None  # late interaction: the token encoder, None when off
    late_dimension: int | None = None
    created_at: float = Field(default_factory=time.time)
    # Pinned at creation (``store_name_for``); records written before it existed use the
    # old ``tenant__name`` form, which two tenants could share (acme + b__x, acme__b + x).
    store: str | None = None
    # Which re-index built ``store`` (0: none yet); writes carry it (``ReplaceWrite``).
    generation: int = 0
    # Point ids are derived from this name (pinned by the first re-index to the store name
    # of generation 0), so every generation holds the same ids as a clean ingest.
    ids: str | None = None
    reindex: ReindexTarget | None = None
    # Which life of the name this is: a fresh id at every create (``StateStore``), so a
    # collection deleted and created again is another one. Accept checks it atomically
    # with its writes; tasks and store writes carry it and are dropped when it changed.
    # "" for records written before it existed.
    incarnation: str = ""
    # Documents uploaded without an expiry of their own expire this long after their
    # upload (None: they never do; README, "Expiry").
    ttl_s: float | None = None
    # The opt-in query log (None: off; indexing/query_log.py, README "Query log").
    query_log: QueryLogConfig | None = None

    @property
    def store_name(self) -> str:
        """The chunk store's collection name: tenants never share one."""
        return self.store or f"{self.tenant}__{self.name}"

    @property
    def point_ns(self) -> str:
        """The name point ids are derived from (``core.ids.point_id``)."""
        return self.ids or self.store_name


# The store's own limit on collection names (core.types.COLLECTION_NAME_PATTERN).
MAX_STORE_NAME_CHARS = 128


def store_name_for(tenant: str, name: str) -> str:
    """An injective store name: the tenant's length first, so no two pairs can meet.

    Raises:
        InvalidInput: the tenant and collection names together are too long for the store.
    """
    store = f"{len(tenant)}-{tenant}-{name}"
    if len(store) > MAX_STORE_NAME_CHARS:
        room = MAX_STORE_NAME_CHARS - len(store) + len(name)
        raise InvalidInput(
            f"collection name of {len(name)} characters; for this tenant the limit is {room}",
            code="name_too_long",
        )
    return store


def generation_store_name(base: str, generation: int) -> str:
    """The store name of a re-indexed generation: ``g<generation>-<base>``.

    Generation numbers come from one global counter, so a name is never reused, not even
    by a collection deleted and created again; generation-0 names start with a digit, so
    they never meet these.

    Raises:
        InvalidInput: the name would be longer than the store allows.
    """
    store = f"g{generation}-{base}"
    if len(store) > MAX_STORE_NAME_CHARS:
        raise InvalidInput(
            f"the re-indexed store name would be {len(store)} characters; the store allows "
            f"{MAX_STORE_NAME_CHARS} (use a shorter collection name)",
            code="name_too_long",
        )
    return store


class DocumentRecord(_Record):
    """One document of a collection at its current version, with the job responsible for it.

    ``version`` is taken from one counter by every accepted change (upload, replace,
    delete); tasks and store writes carry it and are dropped when it moved on. ``owner``
    is the live worker (or store writer) that claimed it; ``crashes`` counts owners that
    died holding it.
    """

    id: str
    version: int = 0
    seq: int = 0
    status: DocStatus = DocStatus.QUEUED
    job_id: str
    kind: str = "file"
    content_hash: str | None = None
    indexed_hash: str | None = None
    blob_key: str | None = None
    source: str | None = None
    title: str | None = None
    size: int = 0
    pages: int | None = None
    # Blob key of the page-image manifest written at ingest ("": the document has no page
    # images; None: indexed before page images were derived at ingest).
    page_images: str | None = None
    chunk_count: int = 0
    # Of ``chunk_count``, the chunks whose vectors were taken from the version before
    # (incremental re-ingest, ``indexing.reuse``); the others were embedded.
    chunks_reused: int = 0
    error_reason: str | None = None
    error_message: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    owner: str = ""
    crashes: int = 0
    updated_at: float = Field(default_factory=time.time)
    # When it expires (Unix seconds; None: never): from then on queries drop its hits, and
    # the retention sweep deletes it. Kept in the ``expiry`` index by ``lifecycle.lua``.
    expires_at: float | None = None


class JobRecord(_Record):
    """A batch of document operations submitted together."""

    id: str
    tenant: str
    collection: str
    kind: str = "ingest"
    created_at: float = Field(default_factory=time.time)
    cancelled: bool = False


class JobView(BaseModel):
    """A job with its derived state and progress (counts are kept, not recounted)."""

    job: JobRecord
    state: JobState
    counts: dict[str, int]
    total: int
    finished_at: float | None
    # Each document's state within the job; None when the job is too large to list inline.
    documents: dict[str, str] | None
    errors: dict[str, dict[str, str]]
