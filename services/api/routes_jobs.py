"""``/v1/jobs``: a job's state, progress, per-document states and errors; cancel."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.deps import Deps, Tenant, in_thread
from services.api.schemas import JobResponse
from services.state import DocStatus, JobView

__all__ = ["router"]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _errors(deps: Deps, view: JobView) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for doc_id, status in view.documents.items():
        if status != DocStatus.FAILED.value:
            continue
        doc = deps.state.find_document(view.job.tenant, view.job.collection, doc_id)
        if doc is not None and doc.job_id == view.job.id:
            out[doc_id] = {
                "reason": doc.error_reason or "unknown",
                "message": doc.error_message or "",
            }
    return out


def _response(deps: Deps, view: JobView) -> JobResponse:
    return JobResponse(
        id=view.job.id,
        collection=view.job.collection,
        kind=view.job.kind,
        state=view.state.value,
        counts=view.counts,
        total=len(view.documents),
        documents=view.documents,
        errors=_errors(deps, view),
        created_at=view.job.created_at,
        finished_at=view.job.finished_at,
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
