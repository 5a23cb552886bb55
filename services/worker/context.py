"""Per-process wiring of the worker: built once at process start, used by every task."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import SieveError
from core.types import ChunkFilter, FieldEquals, Range
from indexing.state_store import StateStore
from ingest.blob_store import BlobStore
from ingest.pipeline import DocumentPipeline
from retriever.store import ChunkStore

__all__ = [
    "StoreOwner",
    "WorkerContext",
    "set_context_factory",
    "set_store_owner",
    "set_worker_context",
    "store_owner",
    "worker_context",
]


@dataclass
class WorkerContext:
    """What ``sieve.ingest_batch`` needs: state, blobs, the indexing pipeline."""

    state: StateStore
    blobs: BlobStore
    pipeline: DocumentPipeline


@dataclass
class StoreOwner:
    """What ``sieve.store_write`` needs: state and the chunk store it owns."""

    state: StateStore
    store: ChunkStore

    def delete_stale(self, store_name: str, document_id: str, *, keep: int) -> None:
        """Delete a document's chunks numbered ``keep`` and above (an older, longer version)."""
        stale = ChunkFilter(
            must=[
                FieldEquals(key="document_id", value=document_id),
                Range(key="chunk_no", gte=keep),
            ]
        )
        if self.store.count(store_name, stale):
            self.store.delete_by_filter(store_name, stale)


class _Slots:
    worker: WorkerContext | None = None
    owner: StoreOwner | None = None
    factory: Callable[[], WorkerContext] | None = None
    lock = threading.Lock()


def set_context_factory(factory: Callable[[], WorkerContext] | None) -> None:
    """How to build the worker context lazily, for pools without a process-init signal."""
    _Slots.factory = factory


def set_worker_context(ctx: WorkerContext | None) -> None:
    """Install this process's worker context (from ``worker_process_init``)."""
    _Slots.worker = ctx


def set_store_owner(owner: StoreOwner | None) -> None:
    """Install this process's store owner (the API in embedded mode, workers in compose)."""
    _Slots.owner = owner


def worker_context() -> WorkerContext:
    """The installed worker context."""
    with _Slots.lock:
        if _Slots.worker is None and _Slots.factory is not None:
            _Slots.worker = _Slots.factory()
    if _Slots.worker is None:
        raise SieveError("worker context not initialised in this process", code="not_ready")
    return _Slots.worker


def store_owner() -> StoreOwner:
    """The installed store owner."""
    if _Slots.owner is None:
        raise SieveError("this process does not own the chunk store", code="not_store_owner")
    return _Slots.owner
