"""A hub we control: forwards to the real local model hub, or fails on demand.

Used to show the hub answering 429/500/503 or hanging for a while, then recovering.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["FailurePlan", "flaky_hub_app"]


@dataclass
class _Rule:
    count: int
    status: int
    hang_s: float


@dataclass
class FailurePlan:
    """Per endpoint (``embeddings``, ``rerank``): fail or hang the next ``count`` requests."""

    retry_after: str = "1"
    failed: dict[str, int] = field(default_factory=dict)
    forwarded: dict[str, int] = field(default_factory=dict)
    # Bodies of the forwarded POSTs, per endpoint (to check what the client sent).
    bodies: dict[str, list[bytes]] = field(default_factory=dict)
    _rules: dict[str, _Rule] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int, status: int, endpoint: str = "embeddings") -> None:
        """Answer the next ``count`` requests to ``endpoint`` with ``status``."""
        with self._lock:
            self._rules[endpoint] = _Rule(count, status, 0.0)

    def hang_next(self, count: int, seconds: float, endpoint: str = "rerank") -> None:
        """Hold the next ``count`` requests to ``endpoint`` for ``seconds`` before failing."""
        with self._lock:
            self._rules[endpoint] = _Rule(count, 504, seconds)

    def take(self, endpoint: str) -> _Rule | None:
        """The rule for this request, or None to forward it."""
        with self._lock:
            rule = self._rules.get(endpoint)
            if rule is not None and rule.count > 0:
                rule.count -= 1
                self.failed[endpoint] = self.failed.get(endpoint, 0) + 1
                return rule
            self.forwarded[endpoint] = self.forwarded.get(endpoint, 0) + 1
            return None


def flaky_hub_app(upstream: str, plan: FailurePlan) -> Starlette:
    """A Starlette app that proxies ``/v1/...`` to ``upstream`` unless the plan says fail."""

    async def proxy(request: Request) -> Response:
        endpoint = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        rule = plan.take(endpoint)
        if rule is not None:
            if rule.hang_s:
                await asyncio.sleep(rule.hang_s)
            headers = {"Retry-After": plan.retry_after} if rule.status in (429, 503) else None
            error = {"message": "injected", "type": "test", "param": None, "code": rule.status}
            return JSONResponse({"error": error}, status_code=rule.status, headers=headers)
        body = await request.body()
        if request.method == "POST":
            with plan._lock:
                plan.bodies.setdefault(endpoint, []).append(body)
        async with httpx.AsyncClient(base_url=upstream, timeout=120) as client:
            upstream_resp = await client.request(
                request.method,
                request.url.path,
                content=body,
                headers={"content-type": request.headers.get("content-type", "application/json")},
            )
        return Response(
            upstream_resp.content,
            status_code=upstream_resp.status_code,
            media_type=upstream_resp.headers.get("content-type"),
        )

    return Starlette(routes=[Route("/{path:path}", proxy, methods=["GET", "POST"])])
