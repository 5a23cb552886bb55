"""A collection's opt-in query log (indexing/query_log.py) and the query routes' sampling.

``PUT /v1/collections/{c}/query-log`` turns it on (or changes it), ``GET`` shows it,
``DELETE`` turns it off and drops its entries; ``GET .../query-log/entries`` pages them for
``sieve tune --from-query-log``. :func:`sample_query` is what the query routes call: it
decides by ``sample_rate`` and leaves the write to after the answer is sent, where a Redis
failure is counted (``sieve_query_log_total{outcome="dropped"}``), never raised.
"""

from __future__ import annotations

import logging
import random
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query
from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidInput, UpstreamUnavailable
from indexing.query_log import QueryLogConfig, QueryLogEntry, QueryLogStore
from indexing.records import CollectionRecord
from services.api.deps import ApiDeps, Deps, Tenant, in_thread

__all__ = [
    "QueryLogEntriesResponse",
    "QueryLogRequest",
    "QueryLogResponse",
    "router",
    "sample_query",
]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/collections", tags=["query log"])


class QueryLogRequest(BaseModel):
    """Turn the log on: keep ``sample_rate`` of the queries, at most ``max_entries`` distinct
    texts for ``ttl_s`` seconds after each was last seen (absent: the server's defaults)."""

    model_config = ConfigDict(extra="forbid")

    sample_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    max_entries: Annotated[int | None, Field(ge=1)] = None
    ttl_s: Annotated[int | None, Field(ge=1)] = None


class QueryLogResponse(BaseModel):
    """The collection's query log: its config (None: off) and how many entries it holds."""

    name: str
    enabled: bool
    config: QueryLogConfig | None = None
    entries: int = 0


class QueryLogEntriesResponse(BaseModel):
    """A page of entries, most recently seen first; ``next_offset``: the next page (None:
    the last one)."""

    name: str
    total: int
    entries: list[QueryLogEntry]
    next_offset: int | None = None


def _store(deps: ApiDeps) -> QueryLogStore:
    if deps.query_log is None:
        raise UpstreamUnavailable("this server keeps no query log", code="no_query_log")
    return deps.query_log


def _config(body: QueryLogRequest, deps: ApiDeps) -> QueryLogConfig:
    """The config a request asks for, within the server's caps (refused past them)."""
    caps = deps.query_log_settings
    max_entries = caps.default_max_entries if body.max_entries is None else body.max_entries
    ttl_s = caps.default_ttl_s if body.ttl_s is None else body.ttl_s
    if max_entries > caps.max_entries:
        raise InvalidInput(
            f"max_entries: at most {caps.max_entries} (SIEVE_QUERY_LOG_MAX_ENTRIES)",
            code="invalid_request",
            field="max_entries",
        )
    if ttl_s > caps.max_ttl_s:
        raise InvalidInput(
            f"ttl_s: at most {caps.max_ttl_s} (SIEVE_QUERY_LOG_MAX_TTL_S)",
            code="invalid_request",
            field="ttl_s",
        )
    return QueryLogConfig(sample_rate=body.sample_rate, max_entries=max_entries, ttl_s=ttl_s)


async def _held(deps: ApiDeps, rec: CollectionRecord) -> int:
    if rec.query_log is None:
        return 0
    page = await in_thread(
        _store(deps).page, rec.tenant, rec.name, rec.incarnation, rec.query_log, limit=0
    )
    return page.total


@router.get("/{name}/query-log")
async def get_query_log(name: str, deps: Deps, tenant: Tenant) -> QueryLogResponse:
    """The collection's query log config and how many entries it holds."""
    rec = await in_thread(deps.state.get_collection, tenant, name)
    return QueryLogResponse(
        name=name,
        enabled=rec.query_log is not None,
        config=rec.query_log,
        entries=await _held(deps, rec),
    )


@router.put("/{name}/query-log")
async def put_query_log(
    name: str, body: QueryLogRequest, deps: Deps, tenant: Tenant
) -> QueryLogResponse:
    """Turn the query log on, or change its config (entries already kept stay, within it)."""
    _store(deps)
    config = _config(body, deps)
    rec = await in_thread(deps.state.patch_collection, tenant, name, query_log=config)
    return QueryLogResponse(name=name, enabled=True, config=config, entries=await _held(deps, rec))


@router.delete("/{name}/query-log")
async def delete_query_log(name: str, deps: Deps, tenant: Tenant) -> QueryLogResponse:
    """Turn the query log off and forget its entries."""
    rec = await in_thread(deps.state.patch_collection, tenant, name, query_log=None)
    await in_thread(_store(deps).clear, tenant, name, rec.incarnation)
    return QueryLogResponse(name=name, enabled=False)


@router.get("/{name}/query-log/entries")
async def list_query_log(
    name: str,
    deps: Deps,
    tenant: Tenant,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> QueryLogEntriesResponse:
    """A page of the logged queries, most recently seen first (empty when the log is off)."""
    rec = await in_thread(deps.state.get_collection, tenant, name)
    if rec.query_log is None:
        return QueryLogEntriesResponse(name=name, total=0, entries=[])
    page = await in_thread(
        _store(deps).page,
        tenant,
        name,
        rec.incarnation,
        rec.query_log,
        offset=offset,
        limit=limit,
    )
    end = offset + len(page.entries)
    return QueryLogEntriesResponse(
        name=name,
        total=page.total,
        entries=page.entries,
        next_offset=end if page.entries and end < page.total else None,
    )


def sample_query(
    deps: ApiDeps,
    background: BackgroundTasks,
    collections: list[CollectionRecord],
    query: str,
    *,
    top_k: int | None,
) -> None:
    """Log ``query`` in each collection whose log is on and samples it, after the answer."""
    store = deps.query_log
    if store is None:
        return
    for rec in collections:
        config = rec.query_log
        # A sample, not a secret; random() < 1.0 always holds, < 0.0 never.
        if config is not None and random.random() < config.sample_rate:  # noqa: S311
            background.add_task(_record, deps, store, rec, config, query=query, top_k=top_k)


async def _record(
    deps: ApiDeps,
    store: QueryLogStore,
    rec: CollectionRecord,
    config: QueryLogConfig,
    *,
    query: str,
    top_k: int | None,
) -> None:
    try:
        await in_thread(
            store.record, rec.tenant, rec.name, rec.incarnation, config, query, top_k=top_k
        )
    except Exception:  # the answer is sent: a lost log entry is only counted, never raised
        deps.metrics.query_log.labels("dropped").inc()
        log.warning("query log entry dropped", extra={"collection": rec.name}, exc_info=True)
        return
    deps.metrics.query_log.labels("recorded").inc()
