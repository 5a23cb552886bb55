"""The worker process's composition root: ``celery -A services.worker.app worker``.

Clients are built after the fork (``worker_process_init``), one set per process, and each
process is a new lifecycle owner with its own heartbeat. In compose mode
(``SIEVE_QDRANT_BACKEND=server``) workers also own the store and consume ``store_writes``;
in embedded mode only the API process may open the Edge store.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import setup_logging, worker_process_init, worker_process_shutdown

from core.logs import configure_logging
from core.settings import (
    IngestSettings,
    LogSettings,
    ModelSettings,
    RedisSettings,
    RetentionSettings,
    StoreBackend,
    StoreSettings,
    TelemetrySettings,
    WorkerSettings,
)
from indexing.blob_gc import BlobLedger
from indexing.heartbeat import Heartbeat, new_owner_id
from indexing.runner import IndexingRunner
from indexing.state_store import StateStore
from indexing.writes import StoreWriter
from ingest.blob_store import LocalBlobStore
from ingest.chunker import ChunkerConfig
from ingest.limits import limits_from_settings
from ingest.ocr import OcrConfig, RapidOcrEngine
from ingest.pipeline import DocumentPipeline
from ingest.tokenizer import load_bge_small_tokenizer
from services.parent_death import die_with_parent
from services.telemetry import setup_tracing, shutdown_tracing
from services.wiring import build_embeddings, open_sync_store
from services.worker.celery_app import make_celery
from services.worker.celery_queue import CeleryTaskQueue
from services.worker.context import (
    StoreOwner,
    WorkerContext,
    set_context_factory,
    set_store_owner,
    set_worker_context,
    worker_context,
)
from services.worker.task_logs import connect_task_logs
from services.worker.tracing import install_celery_tracing

__all__ = ["build_worker_context", "celery_app"]

celery_app = make_celery(RedisSettings().url, WorkerSettings())
# The prefork pool forks from the process that imported this module.
_MAIN_PID = os.getpid()


def build_worker_context() -> WorkerContext:
    """The runner (state, blobs, pipeline, queue) and this process's heartbeat."""
    ingest, worker = IngestSettings(), WorkerSettings()
    # The worker finishes jobs too (their last entry): the same retention as the API's.
    state = StateStore.from_url(RedisSettings().url, job_retention_s=RetentionSettings().jobs_s)
    # Page images are blobs too: pinned before each write, like the uploads' own.
    blobs = LocalBlobStore(ingest.blob_dir, before_write=BlobLedger(state.raw()).pin)
    pipeline = DocumentPipeline(
        build_embeddings(ModelSettings(), ingest),
        load_bge_small_tokenizer(),
        chunking=ChunkerConfig(
            target_tokens=ingest.chunk_tokens, overlap_tokens=ingest.chunk_overlap
        ),
        limits=limits_from_settings(ingest),
        # Models load (sha256-verified) on the first image, not at start-up.
        ocr=RapidOcrEngine(OcrConfig(intra_op_threads=ingest.ocr_threads))
        if ingest.ocr_enabled
        else None,
        # The pages OCR reads are stored beside the upload, once (the image route reads them).
        page_images=blobs,
    )
    owner = new_owner_id("worker")
    heartbeat = Heartbeat(state, owner, ttl_s=worker.owner_ttl_s, every_s=worker.heartbeat_s)
    heartbeat.start()
    runner = IndexingRunner(
        state,
        blobs,
        pipeline,
        CeleryTaskQueue(celery_app, state.raw()),
        heartbeat=heartbeat,
        interrupts=(SoftTimeLimitExceeded,),
        reuse_vectors=ingest.reuse_vectors,
    )
    return WorkerContext(state=state, runner=runner, heartbeat=heartbeat)


def _configure_logs(**_: Any) -> None:
    # The real stderr: Celery may have swapped sys.stderr for a proxy into logging itself.
    log = LogSettings()
    configure_logging(log.level, json_format=log.json_format, stream=sys.__stderr__)


def _init_process(**_: Any) -> None:
    # A pool process dies with the worker's main process: left behind, it went on with a
    # task that its late ack will redeliver anyway, and held what the task held.
    die_with_parent(signal.SIGKILL, _MAIN_PID if os.getpid() != _MAIN_PID else os.getppid())
    _configure_logs()
    telemetry = TelemetrySettings()
    # After the fork: the batch exporter's thread must belong to this child.
    provider = setup_tracing(telemetry, "sieve-worker")
    if telemetry.enabled:
        install_celery_tracing()
        worker_process_shutdown.connect(lambda **_: shutdown_tracing(provider), weak=False)
    ctx = build_worker_context()
    set_worker_context(ctx)
    store = StoreSettings()
    if store.backend is StoreBackend.SERVER:
        writer = StoreWriter(
            ctx.state,
            open_sync_store(store),
            CeleryTaskQueue(celery_app, ctx.state.raw()),
            heartbeat=ctx.heartbeat,
            reuse_vectors=IngestSettings().reuse_vectors,
        )
        set_store_owner(StoreOwner(writer=writer, heartbeat=ctx.heartbeat))


def _shutdown_process(**_: Any) -> None:
    # A clean stop hands back what this process held at once, not after the owner TTL.
    worker_context().heartbeat.stop()


# Prefork children build their clients right after the fork; other pools build them on
# the first task (worker_context() calls the factory).
set_context_factory(build_worker_context)
worker_process_init.connect(_init_process, weak=False)
worker_process_shutdown.connect(_shutdown_process, weak=False)
# A setup_logging receiver replaces Celery's own set-up in the main process: our JSON lines,
# and no redirection of stdout/stderr into logging, which the prefork children inherited
# and which swallowed every line they logged.
setup_logging.connect(_configure_logs, weak=False)
connect_task_logs()
