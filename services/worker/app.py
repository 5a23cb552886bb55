"""The worker process's composition root: ``celery -A services.worker.app worker``.

Clients are built after the fork (``worker_process_init``), one set per process. In
compose mode (``SIEVE_QDRANT_BACKEND=server``) workers also own the store and consume
``store_writes``; in embedded mode only the API process may open the Edge store.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init

from core.logs import configure_logging
from core.settings import (
    IngestSettings,
    LogSettings,
    ModelSettings,
    RedisSettings,
    StoreBackend,
    StoreSettings,
    WorkerSettings,
)
from indexing.state_store import StateStore
from ingest.blob_store import LocalBlobStore
from ingest.chunker import ChunkerConfig
from ingest.limits import IngestLimits
from ingest.pipeline import DocumentPipeline
from ingest.tokenizer import load_bge_small_tokenizer
from services.wiring import build_embeddings, open_sync_store
from services.worker.celery_app import make_celery
from services.worker.context import (
    StoreOwner,
    WorkerContext,
    set_context_factory,
    set_store_owner,
    set_worker_context,
)

__all__ = ["build_worker_context", "celery_app"]

celery_app = make_celery(RedisSettings().url, WorkerSettings())


def build_worker_context() -> WorkerContext:
    """State, blobs and the pipeline, from settings."""
    ingest = IngestSettings()
    state = StateStore.from_url(RedisSettings().url)
    pipeline = DocumentPipeline(
        build_embeddings(ModelSettings(), ingest),
        load_bge_small_tokenizer(),
        chunking=ChunkerConfig(
            target_tokens=ingest.chunk_tokens, overlap_tokens=ingest.chunk_overlap
        ),
        limits=IngestLimits(max_file_bytes=ingest.max_file_bytes, max_pages=ingest.max_pages),
    )
    return WorkerContext(state=state, blobs=LocalBlobStore(ingest.blob_dir), pipeline=pipeline)


def _init_process(**_: Any) -> None:
    log = LogSettings()
    configure_logging(log.level, json_format=log.json_format)
    ctx = build_worker_context()
    set_worker_context(ctx)
    store = StoreSettings()
    if store.backend is StoreBackend.SERVER:
        set_store_owner(StoreOwner(state=ctx.state, store=open_sync_store(store)))


# Prefork children build their clients right after the fork; other pools build them on
# the first task (worker_context() calls the factory).
set_context_factory(build_worker_context)
worker_process_init.connect(_init_process, weak=False)
