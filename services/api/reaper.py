"""The API's lifecycle loop: reap dead owners' work often, recover after every restart,
resume re-index jobs whose process died, end the snapshots and remove the half-restored
collections of dead processes; and the retention sweep beside it.

``indexing.reaper`` does the work; this runs it off the event loop: ``recover`` once at
start-up and again whenever Redis itself restarted (its run id changed), ``reap`` every
``every_s`` seconds.
"""

from __future__ import annotations

import asyncio
import logging

from core.errors import SieveError
from indexing.reaper import reap, recover
from indexing.retention import RetentionPolicy, retention_pass
from services.api.deps import ApiDeps, in_thread

__all__ = ["lifecycle_loop", "retention_loop"]

log = logging.getLogger("sieve.reaper")


async def lifecycle_loop(
    deps: ApiDeps, *, every_s: float, max_crashes: int, orphan_after_s: float
) -> None:
    """Run until cancelled; a failed pass (Redis away) is logged and retried."""
    seen_run_id = ""
    while True:
        try:
            run_id = await in_thread(deps.state.server_run_id)
            if run_id != seen_run_id:
                await in_thread(recover, deps.state, deps.queue)
                seen_run_id = run_id
            await in_thread(
                reap,
                deps.state,
                deps.queue,
                max_crashes=max_crashes,
                orphan_after_s=orphan_after_s,
            )
            await in_thread(deps.reindexer.resume_pass)
            if deps.bundles is not None:  # dead processes' snapshots and restores
                await in_thread(deps.bundles.recover)
        except SieveError as exc:
            log.warning("lifecycle pass failed", extra={"code": exc.code})
        except Exception:
            # Never let one bad record stop the loop for every tenant.
            log.exception("lifecycle pass crashed")
        await asyncio.sleep(every_s)


async def retention_loop(deps: ApiDeps, *, policy: RetentionPolicy, every_s: float) -> None:
    """Sweep old tombstones and dead blobs every ``every_s`` seconds, off the event loop.

    Its own task, not a step of the lifecycle loop: a sweep reads every record (O(documents))
    and must never delay the reaping of dead owners' work.
    """
    while True:
        try:
            await in_thread(retention_pass, deps.state, deps.queue, deps.blobs, policy)
        except SieveError as exc:
            log.warning("retention pass failed", extra={"code": exc.code})
        except Exception:
            log.exception("retention pass crashed")
        await asyncio.sleep(every_s)
