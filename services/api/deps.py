"""What the API's routes are given: built once in the lifespan, injected per request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request

from core.settings import (
    ApiSettings,
    IngestSettings,
    ModelSettings,
    QueryLogSettings,
    QuotaSettings,
)
from indexing.accept import AcceptLimits
from indexing.feedback import FeedbackStore
from indexing.query_log import QueryLogStore
from indexing.reindex import Reindexer
from indexing.state_store import StateStore, TenantQuota
from indexing.webhooks import WebhookStore
from ingest.blob_store import BlobStore
from ingest.embeddings_client import EmbeddingsClient
from query import QueryEngine
from retriever.store import AsyncChunkStore
from services.api.auth import TenantResolver, remembered_tenant
from services.api.bundles import BundleService
from services.api.metrics import ApiMetrics
from services.api.pools import ApiPools
from services.api.quotas import UploadSlots
from services.api.webhook_targets import TargetPolicy
from services.worker.celery_queue import CeleryTaskQueue

__all__ = ["ApiDeps", "Deps", "Tenant", "in_thread"]

T = TypeVar("T")


@dataclass
class ApiDeps:
    """Every adapter the routes use; the lifespan (or a test) builds it."""

    api: ApiSettings
    models: ModelSettings
    ingest: IngestSettings
    state: StateStore
    store: AsyncChunkStore
    blobs: BlobStore
    queue: CeleryTaskQueue
    embeddings: EmbeddingsClient
    resolver: TenantResolver
    query: QueryEngine
    metrics: ApiMetrics
    reindexer: Reindexer
    quotas: QuotaSettings
    uploads: UploadSlots
    feedback: FeedbackStore | None = None
    # Collections' opt-in query logs and their caps (SIEVE_QUERY_LOG_*).
    query_log: QueryLogStore | None = None
    query_log_settings: QueryLogSettings = field(default_factory=QueryLogSettings)
    # Webhook subscriptions and their outbox; the SSRF guard's policy (SIEVE_WEBHOOK_*).
    webhooks: WebhookStore | None = None
    webhook_policy: TargetPolicy = field(default_factory=TargetPolicy)
    # Snapshots and restores (None: not in this process; the routes answer so).
    bundles: BundleService | None = None
    # /readyz reports memory pressure from this share of Redis's maxmemory (RedisSettings).
    redis_memory_warn_ratio: float = 0.8
    # Sized by ``SIEVE_API_IO_THREADS`` / ``_CPU_THREADS`` / ``_CPU_QUEUE`` (services/api/pools.py).
    pools: ApiPools = field(init=False)

    def __post_init__(self) -> None:
        self.pools = ApiPools.from_settings(self.api)

    @property
    def accept_limits(self) -> AcceptLimits:
        """How much one upload may hold and how it is split into tasks."""
        return AcceptLimits(
            max_documents=self.api.max_documents_per_request,
            task_batch_docs=self.ingest.task_batch_docs,
            task_batch_bytes=self.ingest.task_batch_bytes,
            quota=TenantQuota(
                documents=self.quotas.documents, stored_bytes=self.quotas.stored_bytes
            ),
        )


def get_deps(request: Request) -> ApiDeps:
    """The app's dependencies from its state."""
    deps: ApiDeps = request.app.state.deps
    return deps


def get_tenant(
    request: Request,
    deps: Annotated[ApiDeps, Depends(get_deps)],
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The calling tenant (``Unauthorized`` without a valid key): the one the request
    context resolved for the tenant line, else resolved here."""
    tenant = remembered_tenant(request.scope.get("state", {}))
    return tenant if tenant is not None else deps.resolver.resolve(authorization)


Deps = Annotated[ApiDeps, Depends(get_deps)]
Tenant = Annotated[str, Depends(get_tenant)]


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run short blocking I/O (Redis, blobs, the sync embeddings client) off the event loop.

    It runs on the loop's default executor, which the app's lifespan sets to the short-I/O
    pool (``ApiPools.io``); CPU-heavy work goes to ``deps.pools.cpu.run`` instead.
    """
    return await asyncio.to_thread(fn, *args, **kwargs)
