"""The FastAPI application and its composition root (the lifespan)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api import (
    routes_bundles,
    routes_collections,
    routes_documents,
    routes_evaluation,
    routes_images,
    routes_jobs,
    routes_policy,
    routes_query,
    routes_query_log,
    routes_webhooks,
)
from services.api.body_limits import BodyLimits, LimitPolicy
from services.api.console import install_console
from services.api.deps import ApiDeps
from services.api.errors import error_response, install_error_handlers
from services.api.loop_lag import watch_loop_lag
from services.api.metrics import metrics_allowed
from services.api.readiness import readiness, ready_body
from services.api.reaper import lifecycle_loop
from services.api.request_context import RequestContext

__all__ = ["AppHooks", "create_app"]

log = logging.getLogger("sieve.api")


@dataclass
class AppHooks:
    """How the app gets its dependencies and what else runs beside it.

    ``build`` opens every client (called in the lifespan, closed by ``close``); a test
    or the embedded supervisor passes its own.
    """

    build: Callable[[], Awaitable[ApiDeps]]
    close: Callable[[ApiDeps], Awaitable[None]]
    reap_every_s: float = 3.0
    max_crashes: int = 3
    # A delivered message none of whose documents was claimed this long: its consumer died.
    orphan_after_s: float = 30.0
    background: list[Callable[[ApiDeps], Coroutine[Any, Any, None]]] = field(default_factory=list)
    # Request bodies (ApiSettings / IngestSettings): uploads, each uploaded file, the rest.
    max_upload_bytes: int = 256 * 1024 * 1024
    max_file_bytes: int = 64 * 1024 * 1024
    max_json_bytes: int = 1024 * 1024
    # Routes with a limit of their own (a restore's bundle: SIEVE_BUNDLE_MAX_BYTES).
    route_bytes: dict[tuple[str, str], int] = field(default_factory=dict)


def _upload_routes() -> frozenset[tuple[str, str]]:
    """(method, path) of the routes that take documents: POST and PUT under documents."""
    return frozenset(
        (method, route.path)
        for route in routes_documents.router.routes
        if isinstance(route, APIRoute)
        for method in (route.methods or set()) & {"POST", "PUT"}
    )


def _install(app: FastAPI, deps: ApiDeps) -> None:
    """Give routes ``deps``; short I/O (``in_thread``, ``asyncio.to_thread``) runs on its own
    pool from now on, CPU-heavy work on another (services/api/pools.py), both in /metrics."""
    app.state.deps = deps
    asyncio.get_running_loop().set_default_executor(deps.pools.io)
    deps.metrics.watch_pools(deps.pools.saturation)


def _start_background(hooks: AppHooks, deps: ApiDeps) -> list[asyncio.Task[None]]:
    """The lifecycle loop (reaper, recovery), the event-loop lag probe and the hooks'
    background tasks."""
    loop = lifecycle_loop(
        deps,
        every_s=hooks.reap_every_s,
        max_crashes=hooks.max_crashes,
        orphan_after_s=hooks.orphan_after_s,
    )
    lag = watch_loop_lag(deps.metrics.loop_lag)
    return [asyncio.create_task(c) for c in (loop, lag, *(bg(deps) for bg in hooks.background))]


def create_app(hooks: AppHooks) -> FastAPI:
    """Build the API; clients are opened in the lifespan and closed on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        deps = await hooks.build()
        _install(app, deps)
        tasks = _start_background(hooks, deps)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await hooks.close(deps)
            deps.pools.shutdown()

    app = FastAPI(
        title="Sieve",
        version="0.1.0",
        summary="Two-stage retrieval: hybrid recall in Qdrant, then /rerank with a score cutoff.",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry request spans (on only when a tracer provider is set
        # up, see services/telemetry.py) carry the caller's traceparent. Its log records
        # would carry stack traces, which never leave Sieve, and dependency/serialization
        # spans are noise next to the query's stage spans.
        telemetry={"logs": False, "operation_spans": False, "metrics": False},
    )
    install_error_handlers(app)
    app.add_middleware(
        BodyLimits,
        policy=LimitPolicy(
            default_bytes=hooks.max_json_bytes,
            upload_bytes=hooks.max_upload_bytes,
            file_part_bytes=hooks.max_file_bytes,
            upload_routes=_upload_routes(),
            route_bytes=hooks.route_bytes,
        ),
    )

    # Outermost: a refusal by the body limits, or any error, carries the request id too.
    app.add_middleware(RequestContext)

    for module in (
        routes_bundles,  # before collections: POST /v1/collections/restore is its own route
        routes_collections,
        # Before the documents router: its GET /{doc_id:path} would swallow ".../image".
        routes_images,
        routes_documents,
        routes_jobs,
        routes_query,
        routes_evaluation,
        routes_policy,
        routes_query_log,
        routes_webhooks,
    ):
        app.include_router(module.router)
    install_console(app)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves requests."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], response_model=None)
    async def readyz(request: Request) -> dict[str, object] | Response:
        """Readiness: Redis, the chunk store and the model hub all answer; with each thread
        pool's saturation (in use / size / queued)."""
        deps: ApiDeps = request.app.state.deps
        checks = await readiness(deps)
        if all(checks.values()):
            return await ready_body(deps, checks)
        failing = ", ".join(name for name, ok in checks.items() if not ok)
        return error_response(request, 503, "not_ready", f"not ready: {failing} unavailable")

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus exposition: all tenants' counts, so only for the metrics key."""
        deps: ApiDeps = request.app.state.deps
        refusal = metrics_allowed(deps.api, request.headers.get("authorization"))
        if refusal is not None:
            return error_response(
                request, 401, "unauthorized", refusal, headers={"WWW-Authenticate": "Bearer"}
            )
        body = await asyncio.to_thread(generate_latest, deps.metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app
