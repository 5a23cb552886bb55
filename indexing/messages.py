"""The lifecycle's task messages: typed, versioned, small JSON (ids, never file contents).

Every message names the document versions it was made for, and the collection's
incarnation; whoever runs it checks them against the state (atomically) and drops what
moved on, so a late, repeated or reordered message can never undo a newer change, nor land
in a collection deleted and created again under the same name.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.types import ChunkPoint

__all__ = [
    "DeleteWrite",
    "DocVersion",
    "IngestTask",
    "ReplaceWrite",
    "StoreWrite",
    "WrittenDocument",
]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1


class DocVersion(_Message):
    """One document at the version a message was made for."""

    id: str
    version: int


class IngestTask(_Message):
    """Parse, chunk and embed these documents of one job (run by the ingest workers)."""

    tenant: str
    collection: str
    job_id: str
    docs: list[DocVersion]
    # The collection's incarnation at accept (``CollectionRecord.incarnation``).
    incarnation: str = ""


class WrittenDocument(_Message):
    """One document's computed points, for the store writer."""

    id: str
    version: int
    content_hash: str | None = None
    points: list[ChunkPoint]
    # Incremental re-ingest (``indexing.reuse``): chunk_no -> the chunk_no of the stored
    # point whose dense and token vectors this chunk takes (its points carry none).
    reuse: dict[int, int] = Field(default_factory=dict)


class ReplaceWrite(_Message):
    """Upsert documents' points and drop their older, longer tails."""

    kind: Literal["replace"] = "replace"
    tenant: str
    collection: str
    job_id: str
    docs: list[WrittenDocument]
    # The collection generation whose model computed the vectors (``CollectionRecord``).
    generation: int = 0
    incarnation: str = ""


class DeleteWrite(_Message):
    """Remove every point of a deleted document (at the tombstone's version)."""

    kind: Literal["delete"] = "delete"
    tenant: str
    collection: str
    doc: DocVersion
    incarnation: str = ""


StoreWrite = Annotated[ReplaceWrite | DeleteWrite, Field(discriminator="kind")]
