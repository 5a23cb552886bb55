"""``/v1/jobs``: a job's state, progress, per-document states and errors; cancel."""

from __future__ import annotations

from fastapi import APIRouter

from indexing.records import JobView
from services.api.deps import Deps, Tenant, in_thread
from services.api.schemas import JobResponse

__all__ = ["job_response", "router"]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def job_response(view: JobView) -> JobResponse:
    """A job view as the API shows it."""
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
    """A job's derived state, counts by document state (a re-index: documents done and
    remaining), and per-document errors."""
    return job_response(await in_thread(deps.reindexer.job_view, tenant, job_id))


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: str, deps: Deps, tenant: Tenant) -> JobResponse:
    """Cancel a job: queued documents stop now, in-flight ones at their next step; a
    re-index drops the generation it built and the old one keeps serving."""
    return job_response(await in_thread(deps.reindexer.cancel, tenant, job_id))
