"""HttpReranker over real HTTP: a tiny uvicorn server on a loopback port proves the real
httpx timeout path and Retry-After handling (MockTransport never opens a socket)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core.errors import UpstreamUnavailable
from reranker.codes import RerankErrorCode
from reranker.documents import RerankDocument
from reranker.rerank_client import HttpReranker
from tests.reranker.peers import DOCUMENTS, EXPECTED_ORDER, QUERY, respond
from tests.servers import serve_in_thread

pytestmark = pytest.mark.anyio

HANG_S = 3.0


class Hub:
    """State shared between the server thread and the test."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {"hang": 0, "limited": 0}
        self.call_times: list[float] = []
        self.release = threading.Event()


def _app(hub: Hub) -> Starlette:
    async def hang(request: Request) -> JSONResponse:
        hub.calls["hang"] += 1
        # Hang well past the client's timeout, but let teardown end it early.
        await asyncio.to_thread(hub.release.wait, HANG_S)
        return JSONResponse({"results": []})

    async def limited(request: Request) -> JSONResponse:
        hub.calls["limited"] += 1
        hub.call_times.append(time.monotonic())
        if hub.calls["limited"] == 1:
            return JSONResponse(
                {"error": {"message": "rate limited", "type": "rate_limit", "code": 429}},
                status_code=429,
                headers={"Retry-After": "1"},
            )
        answer = respond("ionos", await request.json())
        return JSONResponse(answer.json(), status_code=answer.status_code)

    return Starlette(
        routes=[
            Route("/v1/hang/rerank", hang, methods=["POST"]),
            Route("/v1/limited/rerank", limited, methods=["POST"]),
        ]
    )


@pytest.fixture
def hub() -> Iterator[tuple[str, Hub]]:
    """A real HTTP server on a free loopback port, run by uvicorn in a thread."""
    state = Hub()
    with serve_in_thread(_app(state), lifespan="off") as url:
        try:
            yield f"{url}/v1", state
        finally:
            # Let a hanging handler return before the server shuts down.
            state.release.set()


async def test_a_hanging_hub_times_out_for_real(hub: tuple[str, Hub]) -> None:
    base_url, state = hub
    async with httpx.AsyncClient(base_url=base_url) as client:
        reranker = HttpReranker(
            client,
            model="m",
            endpoint="hang/rerank",
            timeout_s=0.3,
            max_retries=1,
            backoff_base_s=0.01,
        )
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable) as info:
            await reranker.rerank(QUERY, [RerankDocument(d) for d in DOCUMENTS])
        elapsed = time.monotonic() - started
    assert info.value.code == RerankErrorCode.TIMEOUT
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert state.calls["hang"] == 2  # the timeout was retried once
    assert 0.6 <= elapsed < HANG_S


async def test_a_real_429_with_retry_after_then_success(hub: tuple[str, Hub]) -> None:
    base_url, state = hub
    async with httpx.AsyncClient(base_url=base_url) as client:
        reranker = HttpReranker(client, model="m", endpoint="limited/rerank", timeout_s=5)
        result = await reranker.rerank(QUERY, [RerankDocument(d) for d in DOCUMENTS])
    assert result.order() == EXPECTED_ORDER
    assert state.calls["limited"] == 2
    waited = state.call_times[1] - state.call_times[0]
    assert waited >= 0.95  # Retry-After: 1 was honoured over the 0.25 s backoff
