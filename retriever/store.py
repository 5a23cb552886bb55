"""The chunk store port: what the retriever and ingestion need from a vector store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

from anyio import to_thread

from core.types import ChunkFilter, ChunkPayload, ChunkPoint, HybridQuery, ScoredHit
from core.types import StoreCollectionSpec as Spec

__all__ = ["AsyncChunkStore", "ChunkStore", "StoredChunk", "ThreadedChunkStore"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A stored chunk without its vectors: what listing a document returns."""

    id: str
    payload: ChunkPayload


class ChunkStore(Protocol):
    """Synchronous chunk store. Every method raises only ``core.errors`` exceptions.

    Missing collection: ``NotFound``; creating an existing one: ``Conflict``; a vector of
    the wrong size or an unusable filter: ``InvalidInput``.
    """

    def create_collection(self, spec: Spec) -> None:
        """Create a collection with the shared layout (dense ``dense``, sparse ``bm25``)."""
        ...

    def drop_collection(self, name: str) -> None:
        """Delete a collection and all its points."""
        ...

    def collection_exists(self, name: str) -> bool:
        """True if the collection exists."""
        ...

    def upsert(self, name: str, points: Sequence[ChunkPoint]) -> None:
        """Insert or replace points by id (idempotent); durable when it returns."""
        ...

    def get(self, name: str, ids: Sequence[str]) -> list[ChunkPoint]:
        """The points with these ids, in the order asked; missing ids are left out."""
        ...

    def count(self, name: str, filter: ChunkFilter | None = None) -> int:
        """Exact number of points matching ``filter`` (all points without one)."""
        ...

    def delete_document(self, name: str, document_id: str) -> None:
        """Delete every chunk of one document."""
        ...

    def delete_by_filter(self, name: str, filter: ChunkFilter) -> None:
        """Delete the points matching a non-empty filter."""
        ...

    def list_document_chunks(self, name: str, document_id: str) -> list[StoredChunk]:
        """Every chunk of one document, ordered by ``chunk_no``."""
        ...

    def document_points(self, name: str, document_id: str) -> list[ChunkPoint]:
        """Every chunk of one document with its vectors (every kind), by ``chunk_no``:
        what a bundle exports and a restore upserts again."""
        ...

    def query(self, name: str, query: HybridQuery) -> list[ScoredHit]:
        """Recall: run the query's legs and fuse them client-side (see ``retriever.fusion``)."""
        ...

    def late_tokens(self, name: str, *, sample: int = 64) -> float | None:
        """Mean token vectors per chunk over up to ``sample`` points (None: none stored)."""
        ...

    def optimize(self, name: str) -> None:
        """Build the vector index now (Edge: blocking HNSW build; server: no-op)."""
        ...

    def close(self) -> None:
        """Release the store; further calls raise ``SieveError``."""
        ...


class AsyncChunkStore(Protocol):
    """The ``ChunkStore`` operations for async callers (same semantics and errors)."""

    async def create_collection(self, spec: Spec) -> None:
        """See ``ChunkStore.create_collection``."""
        ...

    async def drop_collection(self, name: str) -> None:
        """See ``ChunkStore.drop_collection``."""
        ...

    async def collection_exists(self, name: str) -> bool:
        """See ``ChunkStore.collection_exists``."""
        ...

    async def upsert(self, name: str, points: Sequence[ChunkPoint]) -> None:
        """See ``ChunkStore.upsert``."""
        ...

    async def get(self, name: str, ids: Sequence[str]) -> list[ChunkPoint]:
        """See ``ChunkStore.get``."""
        ...

    async def count(self, name: str, filter: ChunkFilter | None = None) -> int:
        """See ``ChunkStore.count``."""
        ...

    async def delete_document(self, name: str, document_id: str) -> None:
        """See ``ChunkStore.delete_document``."""
        ...

    async def delete_by_filter(self, name: str, filter: ChunkFilter) -> None:
        """See ``ChunkStore.delete_by_filter``."""
        ...

    async def list_document_chunks(self, name: str, document_id: str) -> list[StoredChunk]:
        """See ``ChunkStore.list_document_chunks``."""
        ...

    async def document_points(self, name: str, document_id: str) -> list[ChunkPoint]:
        """See ``ChunkStore.document_points``."""
        ...

    async def query(self, name: str, query: HybridQuery) -> list[ScoredHit]:
        """See ``ChunkStore.query``."""
        ...

    async def late_tokens(self, name: str, *, sample: int = 64) -> float | None:
        """See ``ChunkStore.late_tokens``."""
        ...

    async def optimize(self, name: str) -> None:
        """See ``ChunkStore.optimize``."""
        ...

    async def close(self) -> None:
        """See ``ChunkStore.close``."""
        ...


class ThreadedChunkStore:
    """An ``AsyncChunkStore`` over a sync store: each call runs in a worker thread.

    This is how the async API uses the in-process Edge store without blocking its loop.
    """

    def __init__(self, store: ChunkStore) -> None:
        self.sync = store

    @staticmethod
    async def _run(call: partial[_T]) -> _T:
        return await to_thread.run_sync(call)

    async def create_collection(self, spec: Spec) -> None:
        """See ``ChunkStore.create_collection``."""
        await self._run(partial(self.sync.create_collection, spec))

    async def drop_collection(self, name: str) -> None:
        """See ``ChunkStore.drop_collection``."""
        await self._run(partial(self.sync.drop_collection, name))

    async def collection_exists(self, name: str) -> bool:
        """See ``ChunkStore.collection_exists``."""
        return await self._run(partial(self.sync.collection_exists, name))

    async def upsert(self, name: str, points: Sequence[ChunkPoint]) -> None:
        """See ``ChunkStore.upsert``."""
        await self._run(partial(self.sync.upsert, name, points))

    async def get(self, name: str, ids: Sequence[str]) -> list[ChunkPoint]:
        """See ``ChunkStore.get``."""
        return await self._run(partial(self.sync.get, name, ids))

    async def count(self, name: str, filter: ChunkFilter | None = None) -> int:
        """See ``ChunkStore.count``."""
        return await self._run(partial(self.sync.count, name, filter))

    async def delete_document(self, name: str, document_id: str) -> None:
        """See ``ChunkStore.delete_document``."""
        await self._run(partial(self.sync.delete_document, name, document_id))

    async def delete_by_filter(self, name: str, filter: ChunkFilter) -> None:
        """See ``ChunkStore.delete_by_filter``."""
        await self._run(partial(self.sync.delete_by_filter, name, filter))

    async def list_document_chunks(self, name: str, document_id: str) -> list[StoredChunk]:
        """See ``ChunkStore.list_document_chunks``."""
        return await self._run(partial(self.sync.list_document_chunks, name, document_id))

    async def document_points(self, name: str, document_id: str) -> list[ChunkPoint]:
        """See ``ChunkStore.document_points``."""
        return await self._run(partial(self.sync.document_points, name, document_id))

    async def query(self, name: str, query: HybridQuery) -> list[ScoredHit]:
        """See ``ChunkStore.query``."""
        return await self._run(partial(self.sync.query, name, query))

    async def late_tokens(self, name: str, *, sample: int = 64) -> float | None:
        """See ``ChunkStore.late_tokens``."""
        return await self._run(partial(self.sync.late_tokens, name, sample=sample))

    async def optimize(self, name: str) -> None:
        """See ``ChunkStore.optimize``."""
        await self._run(partial(self.sync.optimize, name))

    async def close(self) -> None:
        """See ``ChunkStore.close``."""
        await self._run(partial(self.sync.close))
