"""``/v1/collections``: create, list, show (with counts), delete."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import ValidationError

from core.errors import InvalidInput
from core.types import StoreCollectionSpec
from indexing.records import CollectionRecord, store_name_for
from services.api.deps import Deps, Tenant, in_thread
from services.api.evaluations import EvaluationStore
from services.api.schemas import CollectionCreateRequest, CollectionResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1/collections", tags=["collections"])


def _response(rec: CollectionRecord, **counts: object) -> CollectionResponse:
    return CollectionResponse(
        name=rec.name,
        embedding_model=rec.embedding_model,
        dimension=rec.dimension,
        hybrid=rec.hybrid,
        rerank_model=rec.rerank_model,
        min_score=rec.min_score,
        created_at=rec.created_at,
        **counts,  # type: ignore[arg-type]
    )


@router.post("", status_code=201)
async def create_collection(
    body: CollectionCreateRequest, deps: Deps, tenant: Tenant
) -> CollectionResponse:
    """Create a collection; its embedding dimension is probed from the hub and pinned."""
    store = store_name_for(tenant, body.name)  # refuses a name too long, before any write
    model = body.embedding_model or deps.models.embedding_model
    vectors = await in_thread(_probe, deps, model)
    dimension = len(vectors[0])
    if dimension == 0:
        raise InvalidInput(f"model {model!r} returned an empty vector", code="bad_model")
    rec = CollectionRecord(
        tenant=tenant,
        name=body.name,
        embedding_model=model,
        dimension=dimension,
        hybrid=body.hybrid,
        rerank_model=body.rerank_model,
        min_score=body.min_score,
        store=store,
    )
    # Everything the store will check is checked before any state is written.
    try:
        spec = StoreCollectionSpec(name=rec.store_name, dense_size=dimension, sparse=True)
    except ValidationError as exc:
        raise InvalidInput(
            f"collection {body.name!r} cannot be stored: name or dimension out of range",
            code="invalid_collection",
        ) from exc
    await in_thread(deps.state.create_collection, rec)
    try:
        await deps.store.create_collection(spec)
    except BaseException:
        await in_thread(deps.state.delete_collection, tenant, body.name)
        raise
    return _response(rec, documents=0, chunks=0)


def _probe(deps: Deps, model: str) -> list[list[float]]:
    client = deps.embeddings
    if client.model == model:
        return client.embed(["dimension probe"])
    return client.for_model(model).embed(["dimension probe"])


@router.get("")
async def list_collections(deps: Deps, tenant: Tenant) -> dict[str, list[CollectionResponse]]:
    """The tenant's collections."""
    recs = await in_thread(deps.state.list_collections, tenant)
    return {"collections": [_response(r) for r in recs]}


@router.get("/{name}")
async def get_collection(name: str, deps: Deps, tenant: Tenant) -> CollectionResponse:
    """One collection with its document and chunk counts."""
    rec = await in_thread(deps.state.get_collection, tenant, name)
    by_status = await in_thread(deps.state.document_counts, tenant, name)
    chunks = await deps.store.count(rec.store_name)
    return _response(
        rec, documents=sum(by_status.values()), documents_by_status=by_status, chunks=chunks
    )


@router.delete("/{name}", status_code=204)
async def delete_collection(name: str, deps: Deps, tenant: Tenant) -> Response:
    """Delete a collection, its chunks and its document records."""
    rec = await in_thread(deps.state.get_collection, tenant, name)
    if await deps.store.collection_exists(rec.store_name):
        await deps.store.drop_collection(rec.store_name)
    await in_thread(deps.state.delete_collection, tenant, name)
    await in_thread(EvaluationStore(deps.state.raw()).delete, tenant, name)
    return Response(status_code=204)
