"""``?wait=true`` on uploads and re-index: answer when the job is terminal, within bounds.

A waiting request holds no thread. It reads its job from Redis (a millisecond on the
short-I/O pool), then sleeps on the event loop with a jittered backoff up to
``SIEVE_API_WAIT_POLL_MAX_S``. Between reads it listens for the client hanging up, which
ends the wait at once. Bounds, all named by ``SIEVE_API_WAIT_*`` settings:

- ``timeout_s`` is at most ``wait_max_timeout_s`` (400 above it) and defaults to
  ``wait_timeout_s``; ``timeout_s`` without ``wait=true`` is refused (400);
- at most ``wait_max_per_tenant`` requests of one tenant wait at once in one API process.
  Past that the request is refused with 429 + ``Retry-After`` before its upload is
  accepted, so a refused request has changed nothing.

The answer: 200 when the job is terminal, whatever its state (``completed``,
``completed_with_errors``, ``cancelled``, ``failed``: the job body says which and carries
the errors); 202 with the job as it is now, ``Location: /v1/jobs/{id}`` and
``Retry-After`` when ``timeout_s`` passed first.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import Receive

from core.errors import InvalidInput, SieveError, TooManyRequests
from core.retry import backoff_delay
from core.settings import ApiSettings
from indexing.records import JobState, JobView
from services.api.deps import Deps, in_thread
from services.api.quotas import TenantSlots
from services.api.routes_jobs import job_response
from services.api.schemas import IngestAcceptedResponse, IngestWaitResponse, JobResponse
from services.api.tenant_gate import release_turn

__all__ = [
    "Wait",
    "WaitParams",
    "WaiterGate",
    "finish_job",
    "finish_upload",
    "wait_responses",
    "waiting",
]

# The first read comes this soon after the job is accepted (a one-document job of the
# local hub is done in ~0.1-0.3 s), then the delay doubles up to wait_poll_max_s.
_FIRST_POLL_S = 0.05
_RUNNING = frozenset({JobState.QUEUED, JobState.RUNNING})
# Retry-After of a 202 (timed out) and of a 429 (every waiter slot taken).
_POLL_AGAIN_S = 1
_WAITERS_BUSY_S = 1.0


def wait_responses(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answers a route that takes ``wait`` adds to its 202."""
    return {
        200: {
            "model": model,
            "description": "With wait=true: the job is terminal (its state says how it ended).",
        },
        202: {"description": "Accepted; with wait=true: timeout_s passed first (see Location)."},
        429: {"description": "With wait=true: this tenant has wait_max_per_tenant waiting."},
    }


@dataclass(frozen=True)
class WaitParams:
    """What the request asked: wait or not, and for how long at most."""

    wait: bool
    timeout_s: float


def wait_params(
    deps: Deps,
    wait: Annotated[
        bool, Query(description="Answer when the job is terminal (or timeout_s has passed).")
    ] = False,
    timeout_s: Annotated[
        float | None,
        Query(gt=0, description="With wait=true: the longest wait in seconds."),
    ] = None,
) -> WaitParams:
    """The ``wait`` / ``timeout_s`` query parameters, checked against the settings.

    Raises:
        InvalidInput: ``timeout_s`` without ``wait=true``, or over ``wait_max_timeout_s``.
    """
    return check_wait(deps.api, wait, timeout_s)


def check_wait(api: ApiSettings, wait: bool, timeout_s: float | None) -> WaitParams:
    """Pure check of the wait parameters (see :func:`wait_params`)."""
    if timeout_s is not None and not wait:
        raise InvalidInput(
            "timeout_s applies only with wait=true", code="invalid_wait", field="timeout_s"
        )
    if timeout_s is not None and timeout_s > api.wait_max_timeout_s:
        raise InvalidInput(
            f"timeout_s {timeout_s:g} is over the limit of {api.wait_max_timeout_s:g} seconds "
            "(SIEVE_API_WAIT_MAX_TIMEOUT_S); poll GET /v1/jobs/{id} for longer jobs",
            code="invalid_wait",
            field="timeout_s",
        )
    return WaitParams(wait=wait, timeout_s=api.wait_timeout_s if timeout_s is None else timeout_s)


class WaiterGate(TenantSlots):
    """How many requests of each tenant wait in this process, under a cap."""

    def slot(self, tenant: str, limit: int) -> AbstractContextManager[None]:
        """Hold one of ``tenant``'s ``limit`` waiter slots.

        Raises:
            TooManyRequests: all ``limit`` slots are held.
        """

        def refuse(held: int) -> SieveError:
            return TooManyRequests(
                f"{held} requests of this tenant are already waiting for their jobs, the "
                f"limit (SIEVE_API_WAIT_MAX_PER_TENANT) is {limit}: retry, or send without "
                "wait=true and poll GET /v1/jobs/{id}",
                code="too_many_waiters",
                retry_after=_WAITERS_BUSY_S,
            )

        return self.hold(tenant, limit, refuse)


def gate_of(request: Request) -> WaiterGate:
    """The app's waiter gate: one per app, made on first use (on the event loop, with no
    await between the check and the set, so two requests cannot make two)."""
    state = request.app.state
    gate: WaiterGate | None = getattr(state, "waiters", None)
    if gate is None:
        gate = state.waiters = WaiterGate()
    return gate


@asynccontextmanager
async def waiting(
    request: Request, deps: Deps, tenant: str, params: WaitParams
) -> AsyncIterator[None]:
    """Around a whole upload or re-index request that waits: take a waiter slot first
    (429 before anything is accepted), release it at the end. No-op without ``wait``."""
    if not params.wait:
        yield
        return
    gauge = deps.metrics.job_waiters.labels(tenant)
    with gate_of(request).slot(tenant, deps.api.wait_max_per_tenant):
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()


async def _hung_up_within(receive: Receive, seconds: float) -> bool:
    """Sleep up to ``seconds``; True as soon as the client hangs up.

    Once the body is read, ``receive`` blocks until the client disconnects (uvicorn), so
    this is the sleep itself, not a busy loop; any other message falls back to a plain sleep.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    try:
        async with asyncio.timeout(seconds):
            message = await receive()
            if message["type"] == "http.disconnect":
                return True
    except TimeoutError:
        return False
    await asyncio.sleep(max(0.0, end - loop.time()))
    return False


async def wait_for(
    request: Request,
    load: Callable[[], Awaitable[JobView]],
    first: JobView,
    params: WaitParams,
    poll_max_s: float,
) -> tuple[JobView, bool]:
    """Read the job until it is terminal, ``timeout_s`` passes or the client hangs up.

    Returns the last view and whether it is terminal. Never waits past the deadline by
    more than one Redis read.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + params.timeout_s
    view, attempt = first, 0
    # From here on the request only waits: its tenant's other requests may run.
    release_turn(request.scope.setdefault("state", {}))
    while view.state in _RUNNING:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return view, False
        pause = backoff_delay(attempt, base_s=_FIRST_POLL_S, max_s=poll_max_s, rng=random.random)
        if await _hung_up_within(request.receive, min(pause, remaining)):
            return view, False
        attempt += 1
        view = await load()
    return view, True


def _poll_headers(job_id: str) -> dict[str, str]:
    return {"Location": f"/v1/jobs/{job_id}", "Retry-After": str(_POLL_AGAIN_S)}


async def finish_upload(
    request: Request, deps: Deps, tenant: str, accepted: IngestAcceptedResponse, params: WaitParams
) -> IngestAcceptedResponse | Response:
    """The upload's answer: the 202 as before, or (``wait``) the 202's fields plus the job
    body of ``GET /v1/jobs/{id}`` once it is terminal (200) or at the timeout (202)."""
    if not params.wait:
        return accepted

    def load() -> Awaitable[JobView]:
        return in_thread(deps.reindexer.job_view, tenant, accepted.job_id)

    view, done = await wait_for(request, load, await load(), params, deps.api.wait_poll_max_s)
    body = IngestWaitResponse(**accepted.model_dump(), job=job_response(view))
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=200 if done else 202,
        headers=None if done else _poll_headers(accepted.job_id),
    )


async def finish_job(
    request: Request,
    response: Response,
    *,
    deps: Deps,
    tenant: str,
    view: JobView,
    params: WaitParams,
) -> JobResponse:
    """A job route's answer (re-index): the job as accepted (202), or (``wait``) the job
    once terminal (200) or at the timeout (202 + ``Retry-After``)."""
    if not params.wait:
        return job_response(view)

    def load() -> Awaitable[JobView]:
        return in_thread(deps.reindexer.job_view, tenant, view.job.id)

    final, done = await wait_for(request, load, view, params, deps.api.wait_poll_max_s)
    response.status_code = 200 if done else 202
    if not done:
        response.headers.update(_poll_headers(view.job.id))
    return job_response(final)


Wait = Annotated[WaitParams, Depends(wait_params)]
