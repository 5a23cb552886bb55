"""What the API's routes are given: built once in the lifespan, injected per request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request

from core.settings import ApiSettings, IngestSettings, ModelSettings, QuotaSettings
from indexing.accept import AcceptLimits
from indexing.feedback import FeedbackStore
from indexing.reindex import Reindexer
from indexing.state_store import StateStore, TenantQuota
from ingest.blob_store import BlobStore
from ingest.embeddings_client import EmbeddingsClient
from retriever.store import AsyncChunkStore
from services.api.auth import TenantResolver
from services.api.metrics import ApiMetrics
from services.api.query_service import QueryEngine
from services.api.quotas import UploadSlots
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
    deps: Annotated[ApiDeps, Depends(get_deps)],
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The calling tenant (``Unauthorized`` without a valid key)."""
    return deps.resolver.resolve(authorization)


Deps = Annotated[ApiDeps, Depends(get_deps)]
Tenant = Annotated[str, Depends(get_tenant)]


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking I/O (Redis, blobs, the sync embeddings client) off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)
