"""Query endpoints and the hub's model list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header

from core.errors import NotFound, UpstreamUnavailable
from indexing.records import CollectionRecord
from query import QueryResult
from services.api.deps import Deps, Tenant, in_thread
from services.api.query_mapping import to_response, to_spec
from services.api.routes_query_log import sample_query
from services.api.schemas_query import MultiQueryRequest, QueryRequest, QueryResponse

__all__ = ["router"]

router = APIRouter(tags=["query"])

# ``X-Sieve-Query-Log: skip``: keep this query out of the collections' query logs (what
# ``sieve tune`` and ``sieve eval`` send: their queries are not the collection's users').
QueryLogHeader = Annotated[
    str | None,
    Header(
        alias="X-Sieve-Query-Log",
        description="`skip`: keep this query out of the collections' query logs",
        max_length=16,
    ),
]


@router.post("/v1/collections/{name}/query")
async def query_collection(
    *,
    name: str,
    body: QueryRequest,
    deps: Deps,
    tenant: Tenant,
    background: BackgroundTasks,
    query_log: QueryLogHeader = None,
) -> QueryResponse:
    """Hybrid recall, rerank, cutoff: ranked, cited passages with every stage's score."""
    result, collections = await _run(deps, tenant, [name], body)
    out = to_response(result)
    if query_log != "skip":
        sample_query(deps, background, collections, body.query, top_k=body.top_k)
    deps.metrics.observe_query(
        out.timings_ms, out.rerank.status, query_truncated=out.rerank.query_truncated
    )
    return out


@router.post("/v1/query")
async def query_many(
    body: MultiQueryRequest,
    deps: Deps,
    tenant: Tenant,
    background: BackgroundTasks,
    query_log: QueryLogHeader = None,
) -> QueryResponse:
    """One query over several of the tenant's collections that share an embedding model."""
    names = list(dict.fromkeys(body.collections))
    request = QueryRequest.model_validate(body.model_dump(exclude={"collections"}))
    result, collections = await _run(deps, tenant, names, request)
    out = to_response(result)
    if query_log != "skip":
        sample_query(deps, background, collections, request.query, top_k=request.top_k)
    deps.metrics.observe_query(
        out.timings_ms, out.rerank.status, query_truncated=out.rerank.query_truncated
    )
    return out


async def _records(deps: Deps, tenant: str, names: list[str]) -> list[CollectionRecord]:
    return [await in_thread(deps.state.get_collection, tenant, n) for n in names]


async def _run(
    deps: Deps, tenant: str, names: list[str], req: QueryRequest
) -> tuple[QueryResult, list[CollectionRecord]]:
    """Run the query (and say which records answered it); once more with fresh records if
    a re-index switched under it.

    A re-index drops the old generation shortly after the switch, so a query that read the
    record just before it can find its store collection gone: then the record points at
    the new generation (maybe with another model), and the whole query runs again on it.
    """
    spec = to_spec(req)
    collections = await _records(deps, tenant, names)
    try:
        return await deps.query.run(collections, spec), collections
    except NotFound:
        fresh = await _records(deps, tenant, names)  # NotFound here: really deleted
        if [c.store_name for c in fresh] == [c.store_name for c in collections]:
            raise
        return await deps.query.run(fresh, spec), fresh


@router.get("/v1/models", tags=["models"])
async def list_models(deps: Deps, tenant: Tenant) -> dict[str, Any]:
    """The model hub's models (cached), to pick an embedding or rerank model."""
    del tenant  # any tenant may list them; the dependency still checks the key
    try:
        data = await deps.query.catalog.listing()
    except Exception as exc:
        raise UpstreamUnavailable(f"model hub did not list its models: {exc}") from exc
    return {"object": "list", "data": data}
