"""``/v1/jobs``: a job's state, progress, per-document states and errors; cancel."""

from __future__ import annotations

from fastapi import APIRouter

from indexing.records import DocStatus, JobState, JobView
from services.api.deps import Deps, Tenant, in_thread
from services.api.schemas import JobResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _response(deps: Deps, view: JobView) -> JobResponse:
    job = view.job
    failed = [d for d, status in view.documents.items() if status == DocStatus.FAILED.value]
    finished = view.state not in (JobState.QUEUED, JobState.RUNNING)
    # Errors need the failed documents; the finish time needs all of them, once finished.
    wanted = list(view.documents) if finished else failed
    docs = [
        d
        for d in deps.state.get_documents(job.tenant, job.collection, wanted)
        if d.job_id == job.id
    ]
    errors = {
        d.id: {"reason": d.error_reason or "unknown", "message": d.error_message or ""}
        for d in docs
        if d.status is DocStatus.FAILED
    }
    finished_at = max((d.updated_at for d in docs), default=job.created_at) if finished else None
    return JobResponse(
        id=view.job.id,
        collection=view.job.collection,
        kind=view.job.kind,
        state=view.state.value,
        counts=view.counts,
        total=len(view.documents),
        documents=view.documents,
        errors=errors,
        created_at=job.created_at,
        finished_at=finished_at,
        cancelled=view.job.cancelled,
    )


@router.get("/{job_id}")
async def get_job(job_id: str, deps: Deps, tenant: Tenant) -> JobResponse:
    """A job's derived state, counts by document state, and per-document errors."""
    view = await in_thread(deps.state.get_job, tenant, job_id)
    return await in_thread(_response, deps, view)


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: str, deps: Deps, tenant: Tenant) -> JobResponse:
    """Cancel a job: documents not yet written are skipped; written ones stay."""
    view = await in_thread(deps.state.cancel_job, tenant, job_id)
    return await in_thread(_response, deps, view)
