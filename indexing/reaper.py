"""No document stays "in progress" forever, and none is failed for waiting in a queue.

Two passes, both driven by the state's indexes (never a scan of every document):

- ``reap``: a claimed document whose owner stopped heart-beating (its worker died, was
  killed, or hung past its time limit and was replaced) is queued again at the same
  version; after ``max_crashes`` such deaths it fails with ``worker_crashed`` instead of
  looping. Queued work is not claimed, so waiting never counts.
- ``recover``: after a restart (of the API, a worker or Redis), every unfinished version
  without a message — lost with a crashed process, or never sent — gets one. Versions
  make the resend safe: a message that turns up later finds its work done and is dropped.
"""

from __future__ import annotations

import logging
from collections import Counter

from indexing.messages import DeleteWrite, DocVersion, IngestTask
from indexing.queue import Pending, TaskQueue
from indexing.records import DocStatus
from indexing.state_store import DocRef, Owner, StateStore

__all__ = ["reap", "recover", "resend_deletes"]

log = logging.getLogger("sieve.reaper")


def reap(
    state: StateStore, queue: TaskQueue, *, max_crashes: int, orphan_after_s: float
) -> dict[str, int]:
    """One pass over the claimed documents and the delivered messages (O(in flight)).

    A delivered message with documents still queued at its versions after
    ``orphan_after_s`` lost its consumer (a live worker claims them all on receipt): it goes
    back to its queue rather than waiting out the broker's visibility timeout.
    """
    tally: Counter[str] = Counter()
    for ref in state.running():
        result, version = state.reap(ref, max_crashes)
        if result == "requeued":
            _send(state, queue, ref, version)
        if result in ("requeued", "failed"):
            tally[result] += 1
    for tag, task in queue.delivered(orphan_after_s):
        docs = state.get_documents(task.tenant, task.collection, [d.id for d in task.docs])
        current = {d.id: d for d in docs}
        waiting = [
            d
            for d in task.docs
            if (doc := current.get(d.id)) is not None
            and doc.version == d.version
            and doc.status is DocStatus.QUEUED
        ]
        # A live consumer claims every document of its message first; some still waiting
        # at their version means it never got to them.
        if waiting and queue.redeliver(tag):
            tally["redelivered"] += 1
    if tally:
        log.warning("work whose worker died", extra=dict(tally))
    return {k: tally[k] for k in ("requeued", "failed", "redelivered")}


def recover(state: StateStore, queue: TaskQueue) -> dict[str, int]:
    """Give every unfinished version without a pending message one (O(unfinished + queue))."""
    pending = queue.pending()
    tally: Counter[str] = Counter()
    for tenant in state.tenants():
        for coll in state.list_collections(tenant):
            name = coll.name
            for doc_id in state.in_status(tenant, name, DocStatus.QUEUED):
                doc = state.find_document(tenant, name, doc_id)
                if doc is None or doc.owner:
                    continue
                if (tenant, name, doc_id, doc.version) not in pending.ingest:
                    _send(state, queue, DocRef(tenant, name, doc_id), doc.version)
                    tally["ingest"] += 1
            for doc_id in state.in_status(tenant, name, DocStatus.WRITING):
                doc = state.find_document(tenant, name, doc_id)
                key = (tenant, name, doc_id, doc.version if doc else 0)
                if doc is None or key in pending.writes:
                    continue
                # The points were in a message that is gone: compute them again.
                back = state.transition(
                    tenant,
                    name,
                    doc_id,
                    DocStatus.QUEUED,
                    version=doc.version,
                    from_=[DocStatus.WRITING],
                    owner=Owner.claim(""),
                )
                if back.applied:
                    _send(state, queue, DocRef(tenant, name, doc_id), doc.version)
                    tally["rewrite"] += 1
            tally["delete"] += resend_deletes(
                state, queue, tenant, name, pending, incarnation=coll.incarnation
            )
    if tally:
        log.warning("recovered work without a message", extra=dict(tally))
    return {"ingest": tally["ingest"], "rewrite": tally["rewrite"], "delete": tally["delete"]}


def resend_deletes(
    state: StateStore,
    queue: TaskQueue,
    tenant: str,
    name: str,
    pending: Pending,
    *,
    incarnation: str,
    older_than: float | None = None,
) -> int:
    """Send the points' removal again for the collection's tombstones without a message.

    Only tombstones last changed before ``older_than`` (a timestamp) when it is given. The
    messages carry the collection's ``incarnation`` (work of another one is dropped).
    Returns how many were sent.
    """
    sent = 0
    for doc_id in state.in_status(tenant, name, DocStatus.DELETED):
        doc = state.find_document(tenant, name, doc_id)
        if doc is None or doc.status is not DocStatus.DELETED:
            continue
        if (tenant, name, doc_id, doc.version) in pending.writes:
            continue
        if older_than is not None and doc.updated_at >= older_than:
            continue
        queue.send_write(
            DeleteWrite(
                tenant=tenant,
                collection=name,
                doc=DocVersion(id=doc_id, version=doc.version),
                incarnation=incarnation,
            )
        )
        sent += 1
    return sent


def _send(state: StateStore, queue: TaskQueue, ref: DocRef, version: int) -> None:
    doc = state.find_document(ref.tenant, ref.collection, ref.doc_id)
    coll = state.find_collection(ref.tenant, ref.collection)
    if doc is None or coll is None:
        return
    queue.send_ingest(
        IngestTask(
            tenant=ref.tenant,
            collection=ref.collection,
            job_id=doc.job_id,
            docs=[DocVersion(id=ref.doc_id, version=version)],
            incarnation=coll.incarnation,
        )
    )
