"""The API's lifecycle loop: reap dead owners' work often, recover after every restart,
resume re-index jobs whose process died.

``indexing.reaper`` does the work; this runs it off the event loop: ``recover`` once at
start-up and again whenever Redis itself restarted (its run id changed), ``reap`` every
``every_s`` seconds.
"""

from __future__ import annotations

import asyncio
import logging

from core.errors import SieveError
from indexing.reaper import reap, recover
from services.api.deps import ApiDeps, in_thread

__all__ = ["lifecycle_loop"]

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
        except SieveError as exc:
            log.warning("lifecycle pass failed", extra={"code": exc.code})
        except Exception:
            # Never let one bad record stop the loop for every tenant.
            log.exception("lifecycle pass crashed")
        await asyncio.sleep(every_s)
