"""Stalled work: no document stays "in progress" forever.

A document whose state has not moved for ``stall_after_s`` (its worker died with the
message lost, the API crashed between saving and enqueueing, ...) is queued again; after
``max_attempts`` it is ``failed`` with reason ``stalled``.
"""

from __future__ import annotations

import asyncio
import logging
import time

from core.errors import SieveError
from indexing.records import TERMINAL, DocStatus
from services.api.deps import ApiDeps, in_thread

__all__ = ["reap_once", "reap_stalled"]

log = logging.getLogger("sieve.reaper")


def reap_once(deps: ApiDeps, stall_after_s: float, max_attempts: int) -> dict[str, int]:
    """One pass over every collection; returns how many documents were requeued/failed."""
    requeued = failed = 0
    now = time.time()
    for tenant in deps.state.tenants():
        for coll in deps.state.list_collections(tenant):
            docs, _ = deps.state.list_documents(tenant, coll.name, limit=1_000_000)
            for doc in docs:
                if doc.status in TERMINAL or now - doc.updated_at < stall_after_s:
                    continue
                if doc.attempts >= max_attempts:
                    deps.state.update_document(
                        tenant,
                        coll.name,
                        doc.id,
                        job_id=doc.job_id,
                        status=DocStatus.FAILED,
                        error_reason="stalled",
                        error_message=(
                            f"no progress after {doc.attempts} attempts "
                            f"(last state {doc.status.value})"
                        ),
                    )
                    deps.state.set_job_doc(doc.job_id, doc.id, DocStatus.FAILED)
                    failed += 1
                    continue
                deps.state.update_document(
                    tenant,
                    coll.name,
                    doc.id,
                    job_id=doc.job_id,
                    status=DocStatus.QUEUED,
                    attempts=doc.attempts + 1,
                )
                deps.celery.send_task("sieve.ingest_batch", args=[doc.job_id, [doc.id]])
                requeued += 1
    if requeued or failed:
        log.warning("stalled documents", extra={"requeued": requeued, "failed": failed})
    return {"requeued": requeued, "failed": failed}


async def reap_stalled(
    deps: ApiDeps, every_s: float, stall_after_s: float, max_attempts: int
) -> None:
    """Run ``reap_once`` every ``every_s`` seconds until cancelled."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await in_thread(reap_once, deps, stall_after_s, max_attempts)
        except SieveError as exc:
            log.warning("reaper pass failed", extra={"code": exc.code, "detail": exc.message})
