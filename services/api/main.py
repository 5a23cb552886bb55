"""The API process's composition root: settings → clients → app (``sieve api`` / uvicorn).

In embedded mode this process is the only owner of the Edge store, so it also consumes
the ``store_writes`` queue with an in-process Celery consumer (threads pool, one thread).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from celery import Celery
from fastapi import FastAPI

from core.logs import configure_logging
from core.settings import (
    ApiSettings,
    IngestSettings,
    LogSettings,
    ModelSettings,
    RedisSettings,
    StoreBackend,
    StoreSettings,
    WorkerSettings,
)
from ingest.blob_store import LocalBlobStore
from retriever.store import ChunkStore
from services.api.app import AppHooks, create_app
from services.api.auth import TenantResolver
from services.api.deps import ApiDeps
from services.state import StateStore
from services.wiring import build_embeddings, open_stores
from services.worker.celery_app import STORE_WRITES_QUEUE, make_celery
from services.worker.context import StoreOwner, set_store_owner

__all__ = ["StoreWritesConsumer", "build_app"]

log = logging.getLogger("sieve.api")


class StoreWritesConsumer:
    """A Celery consumer for ``store_writes`` inside the store-owning process.

    Uses ``WorkController`` (no signal handlers, so it runs in a thread) with the threads
    pool: nothing forks from a process that holds the Edge store.
    """

    def __init__(self, app: Celery, owner: StoreOwner) -> None:
        self._app = app
        self._owner = owner
        self._worker: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start consuming in a daemon thread."""
        from celery.worker import WorkController  # noqa: PLC0415 - heavy, only here

        set_store_owner(self._owner)
        self._worker = WorkController(
            app=self._app,
            pool_cls="threads",
            concurrency=1,
            queues=[STORE_WRITES_QUEUE],
            hostname=f"store-owner-{threading.get_native_id()}@sieve",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel="WARNING",
        )
        self._thread = threading.Thread(target=self._worker.start, name="store-writes", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the task in hand (late acks: an unfinished one is redelivered)."""
        if self._worker is not None:
            self._worker.stop(in_sighandler=False)
        if self._thread is not None:
            self._thread.join(timeout=30)
        set_store_owner(None)


def build_app(*, consume_store_writes: bool | None = None) -> FastAPI:
    """Read settings once and build the app; ``consume_store_writes`` defaults to Edge mode."""
    logs = LogSettings()
    configure_logging(logs.level, json_format=logs.json_format)
    api, models, ingest = ApiSettings(), ModelSettings(), IngestSettings()
    redis_url, worker, store = RedisSettings().url, WorkerSettings(), StoreSettings()
    consume = (
        store.backend is StoreBackend.EDGE if consume_store_writes is None else consume_store_writes
    )
    consumers: list[StoreWritesConsumer] = []
    sync_stores: list[ChunkStore] = []

    async def build() -> ApiDeps:
        state = StateStore.from_url(redis_url)
        celery = make_celery(redis_url, worker)
        sync_store, async_store = await asyncio.to_thread(open_stores, store)
        sync_stores.append(sync_store)
        deps = ApiDeps(
            api=api,
            models=models,
            ingest=ingest,
            state=state,
            store=async_store,
            blobs=LocalBlobStore(ingest.blob_dir),
            celery=celery,
            embeddings=build_embeddings(models),
            resolver=TenantResolver(api.keys),
        )
        if consume:
            consumer = StoreWritesConsumer(celery, StoreOwner(state=state, store=sync_store))
            consumer.start()
            consumers.append(consumer)
        return deps

    async def close(deps: ApiDeps) -> None:
        for consumer in consumers:
            await asyncio.to_thread(consumer.stop)
        for sync_store in sync_stores:
            sync_store.close()
        deps.state.close()

    return create_app(
        AppHooks(
            build=build,
            close=close,
            stall_after_s=worker.stall_after_s,
            max_attempts=worker.max_retries,
        )
    )
