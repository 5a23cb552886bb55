"""Building adapters from settings: shared by the API's lifespan and the worker's init."""

from __future__ import annotations

import openai
from qdrant_client import AsyncQdrantClient, QdrantClient

from core.defaults import BULK_PRIORITY, PRIORITY_HEADER
from core.settings import IngestSettings, ModelSettings, StoreBackend, StoreSettings
from ingest.embeddings_client import (
    AsyncEmbeddingsClient,
    EmbeddingsClient,
    RatePacer,
    RetryPolicy,
)
from retriever.edge_store import EdgeChunkStore
from retriever.qdrant_store import AsyncQdrantChunkStore, QdrantChunkStore
from retriever.store import AsyncChunkStore, ChunkStore, ThreadedChunkStore

__all__ = [
    "build_async_embeddings",
    "build_embeddings",
    "open_stores",
    "open_sync_store",
]


def build_embeddings(
    models: ModelSettings, ingest: IngestSettings, *, bulk: bool = True
) -> EmbeddingsClient:
    """The sync embeddings client with explicit timeout, pacing and retry budget. For
    ingest, re-index and tuning it says it is bulk work; ``bulk=False`` for a request
    someone waits on (the API's dimension probe when a collection is created)."""
    client = openai.OpenAI(
        base_url=str(models.base_url),
        api_key=models.api_key.get_secret_value() if models.api_key else "none",
        timeout=models.timeout_s,
        max_retries=0,
        default_headers={PRIORITY_HEADER: BULK_PRIORITY} if bulk else None,
    )
    return EmbeddingsClient(
        client,
        models.embedding_model,
        max_batch_tokens=ingest.embed_batch_tokens,
        max_batch_items=ingest.embed_batch_items,
        pacer=RatePacer(
            rate=models.requests_per_second, burst=max(1.0, models.requests_per_second)
        ),
        retry=RetryPolicy(max_retries=models.max_retries),
    )


def build_async_embeddings(models: ModelSettings) -> AsyncEmbeddingsClient:
    """The async embeddings client for queries."""
    client = openai.AsyncOpenAI(
        base_url=str(models.base_url),
        api_key=models.api_key.get_secret_value() if models.api_key else "none",
        timeout=models.timeout_s,
        max_retries=0,
    )
    # A query waits on this: retry briefly, not for minutes like a batch job.
    return AsyncEmbeddingsClient(
        client, retry=RetryPolicy(max_retries=2, max_backoff_s=2.0, max_retry_after_s=2.0)
    )


def open_sync_store(settings: StoreSettings) -> ChunkStore:
    """The configured store for synchronous callers (store-write consumers)."""
    if settings.backend is StoreBackend.EDGE:
        return EdgeChunkStore(
            settings.path,
            search_threads=settings.search_threads,
            max_open=settings.max_open_collections,
            flush_interval_s=settings.flush_interval_s,
        )
    return QdrantChunkStore(
        QdrantClient(
            url=str(settings.url),
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            timeout=int(settings.timeout_s),
        )
    )


def open_stores(settings: StoreSettings) -> tuple[ChunkStore, AsyncChunkStore]:
    """A sync and an async handle on the configured store, for the API process.

    Edge: one store object behind both (only one handle may hold the directory).
    """
    sync = open_sync_store(settings)
    if settings.backend is StoreBackend.EDGE:
        return sync, ThreadedChunkStore(sync)
    client = AsyncQdrantClient(
        url=str(settings.url),
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        timeout=int(settings.timeout_s),
    )
    return sync, AsyncQdrantChunkStore(client)
