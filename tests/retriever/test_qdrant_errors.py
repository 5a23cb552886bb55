"""qdrant-client's exceptions all become core.errors (the server cases we cannot run here)."""

from __future__ import annotations

import socket

import httpx
import pytest
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    SieveError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from retriever.qdrant_store import QdrantChunkStore, map_qdrant_error


def _response(status: int, error: str, headers: dict[str, str] | None = None) -> UnexpectedResponse:
    body = ('{"status": {"error": "' + error + '"}, "time": 0.0}').encode()
    return UnexpectedResponse(status, "reason", body, httpx.Headers(headers or {}))


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_response(404, "Not found: Collection `c` doesn't exist!"), NotFound),
        (_response(409, "Collection `c` already exists!"), Conflict),
        (_response(400, "Wrong input: Collection `c` already exists!"), Conflict),
        (
            _response(400, "Wrong input: Vector dimension error: expected dim: 4, got 3"),
            InvalidInput,
        ),
        (_response(422, "Format error in JSON body"), InvalidInput),
        (_response(403, "Forbidden"), UpstreamRejected),
        (_response(503, "overloaded"), UpstreamUnavailable),
        (ResponseHandlingException(httpx.ConnectError("refused")), UpstreamUnavailable),
        (httpx.ReadTimeout("slow"), UpstreamUnavailable),
        (ValueError("Collection c not found"), NotFound),
        (ValueError("Sparse vector bm25 is not found in the collection"), InvalidInput),
        (RuntimeError("QdrantLocal instance is closed. Please create a new instance."), SieveError),
    ],
)
def test_every_client_exception_maps_into_the_tree(exc: Exception, expected: type) -> None:
    mapped = map_qdrant_error(exc, "c")
    assert type(mapped) is expected


def test_rate_limit_keeps_retry_after() -> None:
    mapped = map_qdrant_error(_response(429, "slow down", {"Retry-After": "7"}))
    assert isinstance(mapped, UpstreamUnavailable)
    assert mapped.retry_after == 7.0


def test_unreachable_server_is_upstream_unavailable() -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = QdrantClient(url=f"http://127.0.0.1:{port}", timeout=2, check_compatibility=False)
    store = QdrantChunkStore(client)
    try:
        with pytest.raises(UpstreamUnavailable) as info:
            store.count("anything")
        assert info.value.__cause__ is not None  # the SDK exception stays chained
    finally:
        store.close()
