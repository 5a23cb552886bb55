"""``/v1/jobs``: a job's state, progress, per-document states and errors; cancel."""

from __future__ import annotations

from fastapi import APIRouter

from indexing import changes
from indexing.records import JobView
from services.api.deps import Deps, Tenant, in_thread
from services.api.schemas import JobResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _response(view: JobView) -> JobResponse:
    job = view.job
    return JobResponse(
        id=job.id,
        collection=job.collection,
        kind=job.kind,
        state=view.state.value,
        counts=view.counts,
        total=view.total,
        documents=view.documents,
        errors=view.errors,
        created_at=job.created_at,
        finished_at=view.finished_at,
        cancelled=job.cancelled,
    )


@router.get("/{job_id}")
async def get_job(job_id: str, deps: Deps, tenant: Tenant) -> JobResponse:
    """A job's derived state, counts by document state, and per-document errors."""
    return _response(await in_thread(deps.state.get_job, tenant, job_id))


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: str, deps: Deps, tenant: Tenant) -> JobResponse:
    """Cancel a job: queued documents stop now, in-flight ones at their next step."""
    return _response(await in_thread(changes.cancel_job, deps.state, tenant=tenant, job_id=job_id))
