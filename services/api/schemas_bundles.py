"""Schemas of the bundle routes: snapshots (backup) and restores."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

__all__ = ["RestoreResponse", "SnapshotResponse"]


class SnapshotResponse(BaseModel):
    """A snapshot job: running, then completed (its file downloadable) or failed."""

    id: str
    collection: str
    state: Literal["running", "completed", "failed"]
    created_at: float
    finished_at: float | None = None
    bytes: int | None = None
    documents: int | None = None
    chunks: int | None = None
    blobs: int | None = None
    # Documents left out because a write of theirs had died half-way (repaired later).
    skipped: int | None = None
    error: dict[str, str] | None = None
    # Where the bundle is downloaded from once completed.
    file: str | None = None


class RestoreResponse(BaseModel):
    """The collection a restore created."""

    collection: str
    documents: int
    chunks: int
    blobs: int
    feedback: int
    evaluation: bool
    # With ``reindex=true`` and models this hub does not serve: the re-index job started.
    reindex_job: str | None = None
