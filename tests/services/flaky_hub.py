"""A hub we control: forwards to the real local model hub, or fails on demand.

Used to show the hub answering 429 and 503 for a while and then recovering.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["FailurePlan", "flaky_hub_app"]


@dataclass
class FailurePlan:
    """Fail the next ``count`` embedding requests with ``status`` (429 carries Retry-After)."""

    count: int = 0
    status: int = 503
    retry_after: str = "1"
    failed: int = 0
    forwarded: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int, status: int) -> None:
        """Arm the plan."""
        with self.lock:
            self.count, self.status = count, status

    def take(self) -> int | None:
        """The status to fail with now, or None to forward."""
        with self.lock:
            if self.count > 0:
                self.count -= 1
                self.failed += 1
                return self.status
            self.forwarded += 1
            return None


def flaky_hub_app(upstream: str, plan: FailurePlan) -> Starlette:
    """A Starlette app that proxies ``/v1/...`` to ``upstream`` unless the plan says fail."""

    async def proxy(request: Request) -> Response:
        if request.url.path.endswith("/embeddings"):
            status = plan.take()
            if status is not None:
                headers = {"Retry-After": plan.retry_after} if status in (429, 503) else None
                error = {"message": "injected", "type": "test", "param": None, "code": status}
                body = {"error": error}
                return JSONResponse(body, status_code=status, headers=headers)
        async with httpx.AsyncClient(base_url=upstream, timeout=60) as client:
            upstream_resp = await client.request(
                request.method,
                request.url.path,
                content=await request.body(),
                headers={"content-type": request.headers.get("content-type", "application/json")},
            )
        return Response(
            upstream_resp.content,
            status_code=upstream_resp.status_code,
            media_type=upstream_resp.headers.get("content-type"),
        )

    return Starlette(routes=[Route("/{path:path}", proxy, methods=["GET", "POST"])])
