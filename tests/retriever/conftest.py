"""Fixtures for the chunk store contract: every adapter behind one sync ``ChunkStore`` face."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient

from core.types import ChunkFilter, ChunkPoint, HybridQuery, ScoredHit, StoreCollectionSpec
from retriever.edge_store import EdgeChunkStore
from retriever.qdrant_store import AsyncQdrantChunkStore, QdrantChunkStore
from retriever.store import AsyncChunkStore, ChunkStore, StoredChunk, ThreadedChunkStore

_T = TypeVar("_T")


class BlockingFacade:
    """Runs an ``AsyncChunkStore`` on a private event loop so the sync test bodies apply."""

    def __init__(self, store: AsyncChunkStore) -> None:
        self._store = store
        self._loop = asyncio.new_event_loop()

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return self._loop.run_until_complete(coro)

    def create_collection(self, spec: StoreCollectionSpec) -> None:
        self._run(self._store.create_collection(spec))

    def drop_collection(self, name: str) -> None:
        self._run(self._store.drop_collection(name))

    def collection_exists(self, name: str) -> bool:
        return self._run(self._store.collection_exists(name))

    def upsert(self, name: str, points: Sequence[ChunkPoint]) -> None:
        self._run(self._store.upsert(name, points))

    def get(self, name: str, ids: Sequence[str]) -> list[ChunkPoint]:
        return self._run(self._store.get(name, ids))

    def count(self, name: str, filter: ChunkFilter | None = None) -> int:
        return self._run(self._store.count(name, filter))

    def delete_document(self, name: str, document_id: str) -> None:
        self._run(self._store.delete_document(name, document_id))

    def delete_by_filter(self, name: str, filter: ChunkFilter) -> None:
        self._run(self._store.delete_by_filter(name, filter))

    def list_document_chunks(self, name: str, document_id: str) -> list[StoredChunk]:
        return self._run(self._store.list_document_chunks(name, document_id))

    def document_points(self, name: str, document_id: str) -> list[ChunkPoint]:
        return self._run(self._store.document_points(name, document_id))

    def query(self, name: str, query: HybridQuery) -> list[ScoredHit]:
        return self._run(self._store.query(name, query))

    def late_tokens(self, name: str, *, sample: int = 64) -> float | None:
        return self._run(self._store.late_tokens(name, sample=sample))

    def optimize(self, name: str) -> None:
        self._run(self._store.optimize(name))

    def close(self) -> None:
        self._run(self._store.close())

    def shutdown(self) -> None:
        """Close the private loop (the store stays callable until then, even when closed)."""
        self._loop.close()


ADAPTERS = ["edge", "edge-threaded", "qdrant-local", "qdrant-async-local"]


def open_store(kind: str, tmp_path: Path) -> ChunkStore:
    """A fresh, empty store of ``kind``."""
    if kind == "edge":
        return EdgeChunkStore(tmp_path / "edge")
    if kind == "edge-threaded":
        return BlockingFacade(ThreadedChunkStore(EdgeChunkStore(tmp_path / "edge")))
    if kind == "qdrant-local":
        return QdrantChunkStore(QdrantClient(":memory:"))
    if kind == "qdrant-async-local":
        return BlockingFacade(AsyncQdrantChunkStore(AsyncQdrantClient(":memory:")))
    raise AssertionError(kind)


@pytest.fixture(params=ADAPTERS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChunkStore]:
    """Each contract test runs once per adapter, on a fresh store."""
    opened = open_store(str(request.param), tmp_path)
    try:
        yield opened
    finally:
        opened.close()
        if isinstance(opened, BlockingFacade):
            opened.shutdown()
