"""The API process's composition root: settings → clients → app (``sieve api`` / uvicorn).

In embedded mode this process is the only owner of the Edge store, so it also consumes
the ``store_writes`` queue with an in-process Celery consumer (threads pool, one thread).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

import httpx
from celery import Celery
from fastapi import FastAPI

from core.logs import configure_logging
from core.settings import (
    ApiSettings,
    BundleSettings,
    IngestSettings,
    LogSettings,
    ModelSettings,
    QueryLogSettings,
    QuerySettings,
    QuotaSettings,
    RedisSettings,
    RerankSettings,
    RetentionSettings,
    StoreBackend,
    StoreSettings,
    TelemetrySettings,
    WebhookSettings,
    WorkerSettings,
)
from indexing.blob_gc import BlobLedger
from indexing.feedback import FeedbackStore
from indexing.heartbeat import Heartbeat, new_owner_id
from indexing.query_log import QueryLogStore
from indexing.reindex import Reindexer
from indexing.retention import RetentionPolicy
from indexing.state_store import StateStore
from indexing.webhooks import WebhookLimits, WebhookStore
from indexing.writes import StoreWriter
from ingest.blob_store import LocalBlobStore
from query import ModelsCatalog, PlanDefaults, QueryEngine, RerankerPool
from retriever.store import ChunkStore
from services.api.app import AppHooks, create_app
from services.api.auth import TenantResolver
from services.api.bundles import BundleService
from services.api.deps import ApiDeps
from services.api.metrics import ApiMetrics
from services.api.query_images import PageImageSource
from services.api.quotas import UploadSlots
from services.api.reaper import retention_loop
from services.api.routes_bundles import RESTORE_PATH
from services.api.webhook_delivery import WebhookSender, webhook_loop
from services.api.webhook_targets import TargetPolicy
from services.telemetry import setup_tracing, shutdown_tracing
from services.wiring import build_async_embeddings, build_embeddings, open_stores
from services.worker.celery_app import STORE_WRITES_QUEUE, make_celery
from services.worker.celery_queue import CeleryTaskQueue
from services.worker.context import StoreOwner, set_store_owner
from services.worker.tracing import install_celery_tracing

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
            self._stop_worker(self._worker)
        self._owner.heartbeat.stop()
        set_store_owner(None)

    def _stop_worker(self, worker: Any) -> None:
        """Stop the consumer and wait for its thread, under Celery's stop flag."""
        from celery.worker import state as worker_state  # noqa: PLC0415

        # What Celery's own SIGTERM handler sets. Its consumer checks it between broker
        # reconnect attempts too: with Redis gone, ``stop`` alone waited out a backoff of up
        # to 100 retries, and the API took 30 s (the join below) to exit.
        worker_state.should_stop = os.EX_OK  # type: ignore[assignment]  # stubs: None only
        try:
            worker.stop(in_sighandler=False)
        except Exception as exc:  # noqa: BLE001 - shutdown goes on: the store must close
            # Redis gone first, say: what was in hand is redelivered (late acks).
            log.warning(
                "store-writes consumer did not stop cleanly",
                extra={"error": type(exc).__name__},
            )
        if self._thread is not None:
            self._thread.join(timeout=30)
        # The flag is the process's: left set, any Celery worker started later in this
        # process (a test's, say) would shut down at once.
        worker_state.should_stop = None


def _build_reindexer(
    state: StateStore,
    store: ChunkStore,
    models: ModelSettings,
    ingest: IngestSettings,
    worker: WorkerSettings,
) -> Reindexer:
    """Re-indexes run here, where the store is open (the only place in embedded mode),
    each under a lease that the lifecycle loop of the next process resumes after a crash."""
    heartbeat = Heartbeat(
        state, new_owner_id("reindex"), ttl_s=worker.owner_ttl_s, every_s=worker.heartbeat_s
    )
    heartbeat.start()
    return Reindexer(
        state,
        store,
        build_embeddings(models, ingest),
        heartbeat=heartbeat,
        batch_docs=ingest.task_batch_docs,
        max_crashes=worker.max_crashes,
    )


def _retention_sweep(
    retention: RetentionSettings,
) -> Callable[[ApiDeps], Coroutine[Any, Any, None]]:
    """The retention sweep as a background task of the app."""
    policy = RetentionPolicy(
        tombstones_s=retention.tombstones_s, blobs_s=retention.blobs_s, batch=retention.sweep_batch
    )

    async def sweep(deps: ApiDeps) -> None:
        await retention_loop(deps, policy=policy, every_s=retention.sweep_every_s)

    return sweep


def _webhook_store(state: StateStore, settings: WebhookSettings) -> WebhookStore:
    """The webhook store on the state's Redis, its bounds written where the scripts read them."""
    store = WebhookStore(
        state.raw(),
        WebhookLimits(
            max_per_collection=settings.max_per_collection,
            outbox_max=settings.outbox_max,
            log_max=settings.log_max,
            log_ttl_s=settings.log_ttl_s,
        ),
    )
    store.configure()
    return store


def _webhook_deliveries(
    settings: WebhookSettings,
) -> Callable[[ApiDeps], Coroutine[Any, Any, None]]:
    """The webhook delivery loop as a background task of the app, with its own HTTP client
    (no base URL, no credentials, redirects off; the guard pins every request's address)."""

    async def deliver(deps: ApiDeps) -> None:
        if deps.webhooks is None:
            return
        limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=0)
        async with httpx.AsyncClient(
            limits=limits, follow_redirects=False, trust_env=False
        ) as client:
            sender = WebhookSender(client, deps.webhook_policy, timeout_s=settings.timeout_s)
            await webhook_loop(deps.webhooks, sender, settings)

    return deliver


def _open_bundles(
    settings: BundleSettings,
    worker: WorkerSettings,
    deps: ApiDeps,
    store: ChunkStore,
    closers: list[Callable[[], Awaitable[None]]],
) -> BundleService:
    """Snapshots and restores, on the sync store of this process (closed first), under an
    owner id whose heartbeat says this process still runs them."""
    heartbeat = Heartbeat(
        deps.state, new_owner_id("bundles"), ttl_s=worker.owner_ttl_s, every_s=worker.heartbeat_s
    )
    heartbeat.start()
    service = BundleService(
        settings,
        state=deps.state,
        store=store,
        blobs=deps.blobs,
        feedback=deps.feedback,
        heartbeat=heartbeat,
        max_collections=deps.quotas.collections,
        quota=deps.accept_limits.quota,
        webhooks=deps.webhooks,
    )

    async def close() -> None:
        await asyncio.to_thread(service.close)
        await asyncio.to_thread(heartbeat.stop)

    closers.insert(0, close)
    return service


def _close_redis_stores(deps: ApiDeps) -> None:
    """Close the Redis connection pools the lifespan opened."""
    deps.state.close()
    for store in (deps.feedback, deps.query_log):
        if store is not None:
            store.close()


def build_app(*, consume_store_writes: bool | None = None) -> FastAPI:
    """Read settings once and build the app; ``consume_store_writes`` defaults to Edge mode."""
    logs = LogSettings()
    configure_logging(logs.level, json_format=logs.json_format)
    api, models, ingest = ApiSettings(), ModelSettings(), IngestSettings()
    redis_cfg, worker, store = RedisSettings(), WorkerSettings(), StoreSettings()
    redis_url = redis_cfg.url
    consume = (
        store.backend is StoreBackend.EDGE if consume_store_writes is None else consume_store_writes
    )
    query_cfg, rerank_cfg, hooks_cfg = QuerySettings(), RerankSettings(), WebhookSettings()
    telemetry, retention, quotas, bundle_cfg, query_log_cfg = (
        TelemetrySettings(),
        RetentionSettings(),
        QuotaSettings(),
        BundleSettings(),
        QueryLogSettings(),
    )
    tracer_provider = setup_tracing(telemetry, "sieve-api")
    if telemetry.enabled:
        install_celery_tracing()
    consumers: list[StoreWritesConsumer] = []
    sync_stores: list[ChunkStore] = []
    closers: list[Callable[[], Awaitable[None]]] = []

    async def build() -> ApiDeps:
        state = StateStore.from_url(redis_url, job_retention_s=retention.jobs_s)
        celery = make_celery(redis_url, worker)
        sync_store, async_store = await asyncio.to_thread(open_stores, store)
        sync_stores.append(sync_store)
        hub = httpx.AsyncClient(
            base_url=str(models.base_url).rstrip("/") + "/",
            timeout=models.timeout_s,
            headers=(
                {"Authorization": f"Bearer {models.api_key.get_secret_value()}"}
                if models.api_key
                else {}
            ),
        )
        blobs = LocalBlobStore(ingest.blob_dir, before_write=BlobLedger(state.raw()).pin)
        query_embeddings = build_async_embeddings(models)
        # The producer pool's broker connections close with the app, not at a later GC.
        closers.extend(
            [hub.aclose, query_embeddings.close, partial(asyncio.to_thread, celery.close)]
        )
        engine = QueryEngine(
            store=async_store,
            embeddings=query_embeddings,
            rerankers=RerankerPool(hub, models, rerank_cfg),
            catalog=ModelsCatalog(hub, ttl_s=rerank_cfg.models_cache_s),
            defaults=PlanDefaults(query_cfg, rerank_cfg, models.rerank_model),
            deleted=lambda c, ids: asyncio.to_thread(state.deleted_among, c.tenant, c.name, ids),
            images=PageImageSource(blobs),
        )
        queue = CeleryTaskQueue(celery, state.raw())
        reindexer = await asyncio.to_thread(
            _build_reindexer, state, sync_store, models, ingest, worker
        )
        closers.insert(0, reindexer.close)
        deps = ApiDeps(
            api=api,
            models=models,
            ingest=ingest,
            state=state,
            store=async_store,
            blobs=blobs,
            queue=queue,
            # The dimension probe of a collection create: a client waits on it.
            embeddings=build_embeddings(models, ingest, bulk=False),
            resolver=TenantResolver(api.keys),
            query=engine,
            metrics=ApiMetrics(state),
            reindexer=reindexer,
            quotas=quotas,
            uploads=UploadSlots(quotas.uploads_in_flight),
            feedback=FeedbackStore.from_url(redis_url, limit=quotas.feedback_per_collection),
            query_log=QueryLogStore.from_url(
                redis_url, max_query_chars=query_log_cfg.max_query_chars
            ),
            query_log_settings=query_log_cfg,
            redis_memory_warn_ratio=redis_cfg.memory_warn_ratio,
            webhooks=await asyncio.to_thread(_webhook_store, state, hooks_cfg),
            webhook_policy=TargetPolicy.from_settings(hooks_cfg),
        )
        deps.bundles = await asyncio.to_thread(
            _open_bundles, bundle_cfg, worker, deps, sync_store, closers
        )
        if consume:
            # This process is the only store writer (embedded mode): whatever a previous
            # incarnation had in hand when it died is ours to redo, now, not after the
            # visibility timeout; no lock can be held by anyone else.
            restored = await asyncio.to_thread(queue.restore_unacked, STORE_WRITES_QUEUE)
            cleared = await asyncio.to_thread(state.clear_locks)
            if restored or cleared:
                log.warning(
                    "recovered store writes", extra={"restored": restored, "locks": cleared}
                )
            owner = new_owner_id("store")
            heartbeat = Heartbeat(
                state, owner, ttl_s=worker.owner_ttl_s, every_s=worker.heartbeat_s
            )
            await asyncio.to_thread(heartbeat.start)
            writer = StoreWriter(
                state, sync_store, queue, heartbeat=heartbeat, reuse_vectors=ingest.reuse_vectors
            )
            consumer = StoreWritesConsumer(celery, StoreOwner(writer=writer, heartbeat=heartbeat))
            consumer.start()
            consumers.append(consumer)
        return deps

    async def close(deps: ApiDeps) -> None:
        for consumer in consumers:
            await asyncio.to_thread(consumer.stop)
        for close_client in closers:
            await close_client()
        for sync_store in sync_stores:
            sync_store.close()
        _close_redis_stores(deps)
        shutdown_tracing(tracer_provider)

    return create_app(
        AppHooks(
            build=build,
            close=close,
            background=[
                _retention_sweep(retention),
                _webhook_deliveries(hooks_cfg),
            ],
            reap_every_s=worker.reap_every_s,
            max_crashes=worker.max_crashes,
            orphan_after_s=3 * worker.owner_ttl_s,
            max_upload_bytes=api.max_upload_bytes,
            max_file_bytes=ingest.max_file_bytes,
            max_json_bytes=api.max_json_bytes,
            route_bytes={("POST", RESTORE_PATH): bundle_cfg.max_bytes},
        )
    )
