"""The lifecycle's other changes a client asks for: delete a document, cancel a job."""

from __future__ import annotations

from indexing.messages import DeleteWrite, DocVersion
from indexing.queue import TaskQueue
from indexing.records import DocStatus, JobView
from indexing.state_store import StateStore

__all__ = ["cancel_job", "delete_document", "delete_expired"]


def delete_document(
    state: StateStore, queue: TaskQueue, *, tenant: str, collection: str, doc_id: str
) -> int:
    """Tombstone the document at a new version and queue the removal of its points.

    From this moment the document is neither listed nor returned by queries (they drop
    tombstoned documents' hits until the points are gone), and no in-flight work for an
    older version can bring it back. Returns the tombstone's version.

    Raises:
        NotFound: no such document.
    """
    rec = state.get_collection(tenant, collection)
    version = state.delete(tenant, collection, doc_id)
    queue.send_write(
        DeleteWrite(
            tenant=tenant,
            collection=collection,
            doc=DocVersion(id=doc_id, version=version),
            incarnation=rec.incarnation,
        )
    )
    return version


def delete_expired(
    state: StateStore,
    queue: TaskQueue,
    *,
    tenant: str,
    collection: str,
    incarnation: str,
    now: float,
    limit: int,
) -> int:
    """Delete up to ``limit`` of the collection's expired documents, as ``delete_document``
    does: tombstoned (at once gone from lists too), their points' removal queued, their
    blobs left to the blob sweep once no record names them. The messages carry the
    collection's ``incarnation``. Returns how many.

    A crash between the tombstone and the message is covered by the tombstone's resend
    (``indexing.reaper.recover`` and the retention sweep).
    """
    done = state.expire_due(tenant, collection, now=now, limit=limit)
    for doc_id, version in done:
        queue.send_write(
            DeleteWrite(
                tenant=tenant,
                collection=collection,
                doc=DocVersion(id=doc_id, version=version),
                incarnation=incarnation,
            )
        )
    return len(done)


def cancel_job(state: StateStore, *, tenant: str, job_id: str) -> JobView:
    """Cancel a job: its queued documents stop now, in-flight ones at their next step.

    Documents already written stay. Costs O(job), once.
    """
    view = state.get_job(tenant, job_id)
    job = view.job
    state.mark_cancelled(job)
    for doc_id, status in state.job_documents(job.id).items():
        if status == DocStatus.QUEUED.value:
            state.transition(
                job.tenant,
                job.collection,
                doc_id,
                DocStatus.CANCELLED,
                job_id=job.id,
                from_=[DocStatus.QUEUED],
            )
    return state.get_job(tenant, job_id)
