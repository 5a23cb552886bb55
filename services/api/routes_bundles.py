"""Backups you can restore anywhere: ``POST /v1/collections/{name}/snapshot`` (a job),
``GET /v1/snapshots/{id}`` and ``/file``, and ``POST /v1/collections/restore``."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from core.errors import InvalidInput, SieveError, UpstreamUnavailable
from core.types import API_COLLECTION_NAME_PATTERN
from indexing.bundle import BundleModels
from services.api.bundles import BundleService
from services.api.deps import Deps, Tenant, in_thread
from services.api.routes_collections import start_reindex
from services.api.schemas import ReindexRequest
from services.api.schemas_bundles import RestoreResponse, SnapshotResponse

__all__ = ["RESTORE_PATH", "router"]

router = APIRouter(tags=["bundles"])

RESTORE_PATH = "/v1/collections/restore"


def _service(deps: Deps) -> BundleService:
    if deps.bundles is None:
        raise SieveError("backups are not configured in this process", code="bundles_disabled")
    return deps.bundles


@router.post("/v1/collections/{name}/snapshot", status_code=202)
async def snapshot_collection(
    name: str, deps: Deps, tenant: Tenant, response: Response
) -> SnapshotResponse:
    """Start a snapshot of the collection into one bundle; poll ``Location`` for it."""
    view = await _service(deps).start_snapshot(tenant, name)
    response.headers["Location"] = f"/v1/snapshots/{view.id}"
    return view


@router.get("/v1/snapshots/{snapshot_id}")
async def get_snapshot(snapshot_id: str, deps: Deps, tenant: Tenant) -> SnapshotResponse:
    """A snapshot job: running, completed (with its file's address) or failed."""
    return await in_thread(_service(deps).get, tenant, snapshot_id)


@router.get("/v1/snapshots/{snapshot_id}/file", response_class=FileResponse)
async def download_snapshot(snapshot_id: str, deps: Deps, tenant: Tenant) -> FileResponse:
    """The completed snapshot's bundle (``application/zstd``, a tar inside)."""
    path = await in_thread(_service(deps).file, tenant, snapshot_id)
    return FileResponse(path, media_type="application/zstd", filename=f"{snapshot_id}.sieve")


async def _served(deps: Deps) -> frozenset[str]:
    try:
        listing = await deps.query.catalog.listing()
    except (httpx.HTTPError, ValueError) as exc:
        raise UpstreamUnavailable(
            "the model hub did not list its models; cannot check the bundle's", retry_after=5
        ) from exc
    return frozenset(str(m["id"]) for m in listing)


def _unserved(models: BundleModels, served: frozenset[str]) -> list[str]:
    wanted = [models.dense_model, *([models.late_model] if models.late_model else [])]
    return [m for m in wanted if m not in served]


@router.post(RESTORE_PATH, status_code=201)
async def restore_collection(
    request: Request,
    deps: Deps,
    tenant: Tenant,
    name: Annotated[str | None, Query(pattern=API_COLLECTION_NAME_PATTERN)] = None,
    reindex: bool = False,
) -> RestoreResponse:
    """Create a collection from a bundle (the request body), without embedding anything.

    The bundle's models must be served by this Sieve's hub for queries; with
    ``reindex=true`` it is restored anyway and re-indexed with this hub's default models.
    """
    service = _service(deps)
    served = await _served(deps)
    missing: list[str] = []

    def check(models: BundleModels) -> None:
        missing.extend(_unserved(models, served))
        if missing and not reindex:
            raise InvalidInput(
                f"the bundle's vectors come from {', '.join(missing)}, which this hub does "
                "not serve for queries; restore with reindex=true to re-embed them with "
                "this hub's default models",
                code="models_not_served",
            )

    path = await service.receive(request.stream())
    outcome = await service.restore(tenant, path, name=name, check_models=check)
    result = outcome.result
    job: str | None = None
    if missing:
        rec = result.record
        body = ReindexRequest(
            embedding_model=deps.models.embedding_model if rec.embedding_model in missing else None,
            late_model=deps.models.late_model if rec.late_model in missing else None,
        )
        view = await start_reindex(rec.name, body, deps, tenant)
        job = view.job.id
    return RestoreResponse(
        collection=result.record.name,
        documents=result.documents,
        chunks=result.chunks,
        blobs=result.blobs,
        feedback=result.feedback,
        evaluation=outcome.evaluation,
        reindex_job=job,
    )
