"""The lifecycle's records: collections, documents, jobs, and the states they move through."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "TERMINAL",
    "CollectionRecord",
    "DocStatus",
    "DocumentRecord",
    "JobRecord",
    "JobState",
    "JobView",
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


class JobState(StrEnum):
    """A job's overall state, derived from its documents."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    CANCELLED = "cancelled"


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CollectionRecord(_Record):
    """A tenant's collection and what was pinned at creation."""

    tenant: str
    name: str
    embedding_model: str
    dimension: int
    hybrid: bool = True
    rerank_model: str | None = None
    min_score: float | None = None
    bm25_avg_len: float | None = None
    created_at: float = Field(default_factory=time.time)

    @property
    def store_name(self) -> str:
        """The chunk store's collection name: tenants never share one."""
        return f"{self.tenant}__{self.name}"


class DocumentRecord(_Record):
    """One document of a collection, with the job that last touched it."""

    id: str
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
    chunk_count: int = 0
    error_reason: str | None = None
    error_message: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    attempts: int = 0
    updated_at: float = Field(default_factory=time.time)


class JobRecord(_Record):
    """A batch of document operations submitted together."""

    id: str
    tenant: str
    collection: str
    kind: str = "ingest"
    created_at: float = Field(default_factory=time.time)
    cancelled: bool = False


class JobView(BaseModel):
    """A job with its derived state and progress."""

    job: JobRecord
    state: JobState
    counts: dict[str, int]
    documents: dict[str, str]
