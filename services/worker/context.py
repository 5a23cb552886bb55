"""Per-process wiring of the worker: built once at process start, used by every task."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import SieveError
from indexing.heartbeat import Heartbeat
from indexing.runner import IndexingRunner
from indexing.state_store import StateStore
from indexing.writes import StoreWriter

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
    """What ``sieve.ingest`` needs: the runner, and the heartbeat that keeps its claims."""

    state: StateStore
    runner: IndexingRunner
    heartbeat: Heartbeat


@dataclass
class StoreOwner:
    """What ``sieve.write`` needs: the writer of the store this process owns."""

    writer: StoreWriter
    heartbeat: Heartbeat


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
