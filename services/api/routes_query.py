"""Query endpoints and the hub's model list."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from core.errors import UpstreamUnavailable
from services.api.deps import Deps, Tenant, in_thread
from services.api.schemas_query import MultiQueryRequest, QueryRequest, QueryResponse

__all__ = ["router"]

router = APIRouter(tags=["query"])


@router.post("/v1/collections/{name}/query")
async def query_collection(
    name: str, body: QueryRequest, deps: Deps, tenant: Tenant
) -> QueryResponse:
    """Hybrid recall, rerank, cutoff: ranked, cited passages with every stage's score."""
    collection = await in_thread(deps.state.get_collection, tenant, name)
    out = await deps.query.run([collection], body)
    deps.metrics.observe_query(out.timings_ms, out.rerank.status)
    return out


@router.post("/v1/query")
async def query_many(body: MultiQueryRequest, deps: Deps, tenant: Tenant) -> QueryResponse:
    """One query over several of the tenant's collections that share an embedding model."""
    names = list(dict.fromkeys(body.collections))
    collections = [await in_thread(deps.state.get_collection, tenant, n) for n in names]
    request = QueryRequest.model_validate(body.model_dump(exclude={"collections"}))
    out = await deps.query.run(collections, request)
    deps.metrics.observe_query(out.timings_ms, out.rerank.status)
    return out


@router.get("/v1/models", tags=["models"])
async def list_models(deps: Deps, tenant: Tenant) -> dict[str, Any]:
    """The model hub's models (cached), to pick an embedding or rerank model."""
    del tenant  # any tenant may list them; the dependency still checks the key
    try:
        data = await deps.query.catalog.listing()
    except Exception as exc:
        raise UpstreamUnavailable(f"model hub did not list its models: {exc}") from exc
    return {"object": "list", "data": data}
