"""What the API's routes are given: built once in the lifespan, injected per request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from celery import Celery
from fastapi import Depends, Header, Request

from core.settings import ApiSettings, IngestSettings, ModelSettings
from indexing.state_store import StateStore
from ingest.blob_store import BlobStore
from ingest.embeddings_client import EmbeddingsClient
from retriever.store import AsyncChunkStore
from services.api.auth import TenantResolver
from services.api.metrics import ApiMetrics
from services.api.query_service import QueryEngine

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
    celery: Celery
    embeddings: EmbeddingsClient
    resolver: TenantResolver
    query: QueryEngine
    metrics: ApiMetrics


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
