"""Every request's context, as plain ASGI middleware: its id, the browser guard, its count.

- The request id (the caller's ``X-Request-Id``, cut to 64 characters, or a new one) is in
  ``request.state.request_id``, in every log line of the request, and in the answer.
- Open mode's host check (services/api/browser_guard.py) answers 403 before any route
  runs; every answer says ``X-Content-Type-Options: nosniff``.
- ``sieve_http_requests_total`` counts the answer by method, route template and status.

Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware``
runs each request in a task group of its own and passes the body and the answer through
memory streams, a cost every request paid on the one event loop every tenant shares.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING

from fastapi.routing import APIRoute
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import TooManyRequests, Unauthorized
from core.logs import log_context
from services.api.auth import remember_tenant
from services.api.browser_guard import browser_refusal
from services.api.errors import error_response
from services.api.metrics import metric_method
from services.api.tenant_gate import keep_turn

if TYPE_CHECKING:
    from services.api.deps import ApiDeps

__all__ = ["RequestContext"]


class RequestContext:
    """ASGI middleware: request id, open-mode host check, ``nosniff``, request counts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request with its id; answer 403 for a refused host or origin."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        rid = (headers.get("x-request-id") or uuid.uuid4().hex)[:64]
        scope.setdefault("state", {})["request_id"] = rid
        deps: ApiDeps | None = getattr(scope["app"].state, "deps", None)
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                out = MutableHeaders(scope=message)
                out["x-request-id"] = rid
                out["x-content-type-options"] = "nosniff"
            await send(message)

        with log_context(request_id=rid):
            refusal = None
            if deps is not None:
                refusal = browser_refusal(deps.api, headers.get("host"), headers.get("origin"))
            if refusal is not None:
                response = error_response(Request(scope), 403, *refusal)
                await response(scope, receive, send_with_headers)
            else:
                await self._in_turn(scope, receive, send_with_headers, deps, headers)
        if deps is not None:
            # Labels from closed sets: any method string or unmatched path would be a series.
            route = scope.get("route")
            path = route.path if isinstance(route, APIRoute) else "unmatched"
            deps.metrics.http_requests.labels(metric_method(scope["method"]), path, status).inc()

    async def _in_turn(
        self, scope: Scope, receive: Receive, send: Send, deps: ApiDeps | None, headers: Headers
    ) -> None:
        """Run the request in one of its tenant's turns (services/api/tenant_gate.py), its
        body bytes paced at the tenant's rate (services/api/tenant_bandwidth.py): API
        routes of a known tenant only; the rest (health, metrics, the console's files, a
        request the route will answer 401) run at once."""
        tenant = None
        if deps is not None and scope["path"].startswith("/v1/"):
            with contextlib.suppress(Unauthorized):
                tenant = deps.resolver.resolve(headers.get("authorization"))
        if deps is None or tenant is None:
            await self.app(scope, receive, send)
            return
        try:
            give_back = await deps.pools.tenants.enter(tenant)
        except TooManyRequests as exc:
            retry = {"Retry-After": str(max(1, round(exc.retry_after)))}
            response = error_response(Request(scope), 429, exc.code, exc.message, retry)
            await response(scope, receive, send)
            return
        remember_tenant(scope["state"], tenant)
        keep_turn(scope["state"], give_back)
        receive, send = deps.pools.bandwidth.wrap(tenant, receive, send)
        try:
            await self.app(scope, receive, send)
        finally:
            give_back()
