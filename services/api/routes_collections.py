"""``/v1/collections``: create, list, show (with counts), change settings, delete, re-index."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from core.errors import InvalidInput, NotFound, UpstreamUnavailable
from core.expiry import valid_ttl
from core.types import StoreCollectionSpec
from indexing.records import CollectionRecord, JobView, store_name_for
from indexing.reindex import ModelChange
from indexing.reindex_state import ReindexState
from services.api.deps import Deps, Tenant, in_thread
from services.api.evaluations import EvaluationStore
from services.api.schemas import (
    CollectionCreateRequest,
    CollectionResponse,
    CollectionUpdateRequest,
    JobResponse,
    ReindexRequest,
    ReindexStatus,
    StoragePerChunk,
)
from services.api.waiting import Wait, finish_job, wait_responses, waiting

__all__ = ["router"]

router = APIRouter(prefix="/v1/collections", tags=["collections"])

# How long a delete waits for the collection's store writes in flight: a batch write takes
# well under a second, and a writer holds a document for at most its 60 s lock.
_DRAIN_WRITES_S = 60.0


def _response(rec: CollectionRecord, **counts: object) -> CollectionResponse:
    return CollectionResponse(
        name=rec.name,
        embedding_model=rec.embedding_model,
        dimension=rec.dimension,
        hybrid=rec.hybrid,
        rerank_model=rec.rerank_model,
        min_score=rec.min_score,
        policy=rec.policy,
        created_at=rec.created_at,
        late_interaction=rec.late_model is not None,
        late_model=rec.late_model,
        late_dimension=rec.late_dimension,
        ttl_s=rec.ttl_s,
        **counts,  # type: ignore[arg-type]
    )


@router.post("", status_code=201)
async def create_collection(
    body: CollectionCreateRequest, deps: Deps, tenant: Tenant
) -> CollectionResponse:
    """Create a collection; its embedding dimension is probed from the hub and pinned."""
    store = store_name_for(tenant, body.name)  # refuses a name too long, before any write
    if body.ttl_s is not None:
        valid_ttl(body.ttl_s, max_ttl_s=deps.api.max_ttl_s)
    model = body.embedding_model or deps.models.embedding_model
    vectors = await in_thread(_probe, deps, model)
    dimension = len(vectors[0])
    if dimension == 0:
        raise InvalidInput(f"model {model!r} returned an empty vector", code="bad_model")
    late_model = late_dimension = None
    if body.late_interaction:
        late_model = body.late_model or deps.models.late_model
        late_dimension = await in_thread(_probe_tokens, deps, late_model)
    elif body.late_model is not None:
        raise InvalidInput("late_model needs late_interaction: true", code="invalid_request")
    rec = CollectionRecord(
        tenant=tenant,
        name=body.name,
        embedding_model=model,
        dimension=dimension,
        hybrid=body.hybrid,
        rerank_model=body.rerank_model,
        min_score=body.min_score,
        store=store,
        late_model=late_model,
        late_dimension=late_dimension,
        ttl_s=body.ttl_s,
    )
    # Everything the store will check is checked before any state is written.
    try:
        spec = StoreCollectionSpec(
            name=rec.store_name, dense_size=dimension, sparse=True, late_size=late_dimension
        )
    except ValidationError as exc:
        raise InvalidInput(
            f"collection {body.name!r} cannot be stored: name or dimension out of range",
            code="invalid_collection",
        ) from exc
    await in_thread(deps.state.create_collection, rec, max_collections=deps.quotas.collections)
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


def _probe_tokens(deps: Deps, model: str) -> int:
    """The token vectors' size of a late-interaction model (asked once, then pinned)."""
    return deps.embeddings.for_model(model).embed_tokens(["dimension probe"])[0].dim


def storage_per_chunk(rec: CollectionRecord, late_tokens: float | None) -> StoragePerChunk:
    """Bytes per chunk of its vectors: float32 dense; token vectors as float32 originals
    (on disk) and the int8 copy the engine scores with."""
    late_floats = None
    if rec.late_dimension is not None and late_tokens is not None:
        late_floats = round(late_tokens * rec.late_dimension)
    return StoragePerChunk(
        dense_bytes=4 * rec.dimension,
        late_tokens=None if late_tokens is None else round(late_tokens, 1),
        late_bytes_float32=None if late_floats is None else 4 * late_floats,
        late_bytes_int8=late_floats,
    )


@router.get("")
async def list_collections(deps: Deps, tenant: Tenant) -> dict[str, list[CollectionResponse]]:
    """The tenant's collections."""
    recs = await in_thread(deps.state.list_collections, tenant)
    return {"collections": [_response(r) for r in recs]}


@router.get("/{name}")
async def get_collection(name: str, deps: Deps, tenant: Tenant) -> CollectionResponse:
    """One collection with its document and chunk counts and its storage per chunk."""
    rec = await in_thread(deps.state.get_collection, tenant, name)
    by_status = await in_thread(deps.state.document_counts, tenant, name)
    chunks = await deps.store.count(rec.store_name)
    late_tokens = await deps.store.late_tokens(rec.store_name) if rec.late_model else None
    reindex = await in_thread(deps.reindexer.reindex_of, rec)
    return _response(
        rec,
        documents=sum(by_status.values()),
        documents_by_status=by_status,
        chunks=chunks,
        storage_per_chunk=storage_per_chunk(rec, late_tokens),
        reindex=None if reindex is None else ReindexStatus(**reindex),
    )


@router.patch("/{name}")
async def update_collection(
    name: str, body: CollectionUpdateRequest, deps: Deps, tenant: Tenant
) -> CollectionResponse:
    """Change the collection's ``ttl_s`` (validated as at create; ``null``: none).

    Uploads from now on get the new default; documents already stored keep their expiry.
    """
    changes = body.model_dump(include=body.model_fields_set)
    if not changes:
        raise InvalidInput("nothing to change: give ttl_s", code="invalid_request")
    if body.ttl_s is not None:
        valid_ttl(body.ttl_s, max_ttl_s=deps.api.max_ttl_s)
    await in_thread(deps.state.patch_collection, tenant, name, **changes)
    return await get_collection(name, deps, tenant)


@router.delete("/{name}", status_code=204)
async def delete_collection(name: str, deps: Deps, tenant: Tenant) -> Response:
    """Delete a collection, its chunks and its document records.

    First (one atomic step) no upload is accepted into it any more and its name cannot be
    created again until the end; then the store writes in flight finish, so none lands in
    a collection created again under the name. A deletion interrupted is resumed by the
    next DELETE.
    """
    rec = await in_thread(deps.state.begin_delete_collection, tenant, name)
    rx = ReindexState(deps.state.raw())
    if not await in_thread(rx.stop_writes, tenant, name, timeout_s=_DRAIN_WRITES_S):
        raise UpstreamUnavailable(
            f"collection {name!r}: store writes still in flight; delete it again shortly",
            code="writes_in_flight",
            retry_after=1,
        )
    if await deps.store.collection_exists(rec.store_name):
        await deps.store.drop_collection(rec.store_name)
    await in_thread(deps.state.delete_collection, tenant, name)
    # After the record is gone: a re-index that created its store collection meanwhile
    # finds the record gone and drops it itself; this drops one created before.
    await in_thread(deps.reindexer.collection_deleted, rec)
    await in_thread(EvaluationStore(deps.state.raw()).delete, tenant, name)
    if deps.feedback is not None:
        await in_thread(deps.feedback.clear, tenant, name)
    if deps.query_log is not None:
        await in_thread(deps.query_log.clear, tenant, name, rec.incarnation)
    return Response(status_code=204)


@router.post("/{name}/reindex", status_code=202, responses=wait_responses(JobResponse))
async def reindex_collection(
    *,
    name: str,
    body: ReindexRequest,
    deps: Deps,
    tenant: Tenant,
    response: Response,
    wait: Wait,
    request: Request,
) -> JobResponse:
    """Rebuild the collection's vectors from its stored chunk texts with other model fields,
    as a job; queries answer from the old vectors until one atomic switch at its end (with
    ``wait=true``: the job once it is terminal, see services/api/waiting.py)."""
    async with waiting(request, deps, tenant, wait):
        view = await _start_reindex(name, body, deps, tenant)
        response.headers["Location"] = f"/v1/jobs/{view.job.id}"
        return await finish_job(request, response, deps=deps, tenant=tenant, view=view, params=wait)


async def _start_reindex(name: str, body: ReindexRequest, deps: Deps, tenant: str) -> JobView:
    """Start a re-index of ``name`` with the model fields ``body`` changes."""
    rec = await in_thread(deps.state.get_collection, tenant, name)
    model, dimension = rec.embedding_model, rec.dimension
    if body.embedding_model is not None and body.embedding_model != rec.embedding_model:
        model = body.embedding_model
        dimension = await in_thread(_probe_field, deps, model, "embedding_model")
    late = rec.late_model is not None if body.late_interaction is None else body.late_interaction
    if not late and body.late_model is not None:
        raise InvalidInput("late_model needs late_interaction: true", code="invalid_request")
    late_model = late_dimension = None
    if late:
        late_model = body.late_model or rec.late_model or deps.models.late_model
        late_dimension = rec.late_dimension
        if late_model != rec.late_model or late_dimension is None:
            late_dimension = await in_thread(
                _probe_field, deps, late_model, "late_model", tokens=True
            )
    change = ModelChange(model, dimension, late_model, late_dimension)
    return await in_thread(deps.reindexer.start, tenant, name, change)


def _probe_field(deps: Deps, model: str, field: str, *, tokens: bool = False) -> int:
    """A model's (token) vector size, probed as collection creation does; an unknown model
    is a 400 naming the field."""
    try:
        return _probe_tokens(deps, model) if tokens else len(_probe(deps, model)[0])
    except NotFound as exc:
        raise InvalidInput(f"{field}: {exc.message}", code="unknown_model") from exc


# A restore with reindex=true starts one the same way (services/api/routes_bundles.py).
start_reindex = _start_reindex
