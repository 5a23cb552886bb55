"""The CLI's client is ``sieve_client`` (``open_client``): every failure is one
``SieveClientError`` with a code and a message, the CLI's short retry budget, and the hint
when the API is not running.

Pure mapping tests build responses directly; the rest run against a small ASGI peer over
real HTTP that answers in Sieve's documented error body (the real API is in the e2e tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sieve_client import SieveClientError
from sieve_client.errors import error_from_response, error_from_transport
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from services.cli.options import open_client
from services.cli.reporting import api_error_message
from tests.servers import free_port, serve_in_thread

_REQ = httpx.Request("GET", "http://api.test/v1/collections/kb")


def _error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "request_id": "req-1"}}


def test_sieve_error_body_maps_to_code_message_status_and_request_id() -> None:
    resp = httpx.Response(
        404,
        json=_error_body("collection_not_found", "collection 'kb' does not exist"),
        request=_REQ,
    )
    err = error_from_response(resp)
    assert (err.code, err.message, err.status, err.request_id) == (
        "collection_not_found",
        "collection 'kb' does not exist",
        404,
        "req-1",
    )
    assert api_error_message(err) == "collection 'kb' does not exist"


def test_validation_error_body_keeps_its_first_message() -> None:
    body = _error_body("invalid_request", "top_n: Input should be less than or equal to 500")
    body["error"]["details"] = [{"loc": ["body", "top_n"], "msg": "..."}]
    err = error_from_response(httpx.Response(422, json=body, request=_REQ))
    assert (err.code, err.status) == ("invalid_request", 422)
    assert err.message.startswith("top_n:")


@pytest.mark.parametrize(
    ("resp", "needle"),
    [
        (
            httpx.Response(502, text="<html><b>Bad   Gateway</b></html>", request=_REQ),
            "Bad Gateway",
        ),
        (httpx.Response(500, json={"detail": "boom"}, request=_REQ), "boom"),
        (httpx.Response(418, request=_REQ), "I'm a teapot"),
    ],
)
def test_a_body_that_is_not_sieves_still_gives_one_line(resp: httpx.Response, needle: str) -> None:
    err = error_from_response(resp)
    assert err.code == f"http_{resp.status_code}"
    assert needle in err.message
    assert "\n" not in err.message


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (httpx.ConnectError("refused", request=_REQ), "unreachable"),
        (httpx.ConnectTimeout("slow", request=_REQ), "unreachable"),
        (httpx.ReadTimeout("slow", request=_REQ), "timeout"),
        (httpx.UnsupportedProtocol("ftp", request=_REQ), "bad_url"),
        # sieve_client's code; the CLI's own client said "transport_error".
        (httpx.RemoteProtocolError("eof", request=_REQ), "transport"),
    ],
)
def test_transport_errors_map_to_a_code(exc: httpx.TransportError, code: str) -> None:
    err = error_from_transport(exc, "http://api.test")
    assert err.code == code
    assert "http://api.test" in err.message


# ------------------------------------------------------------------ over real HTTP
class _Peer:
    def __init__(self) -> None:
        self.busy_left = 0
        self.seen: list[tuple[str, str, str | None]] = []

    def app(self) -> Starlette:
        async def collections(request: Request) -> Response:
            self.seen.append(("GET", request.url.path, request.headers.get("authorization")))
            if self.busy_left:
                self.busy_left -= 1
                return JSONResponse(
                    _error_body("upstream_unavailable", "busy"),
                    status_code=503,
                    headers={"Retry-After": "1"},
                )
            return JSONResponse({"collections": []})

        async def job(request: Request) -> Response:
            job_id = request.path_params["job_id"]
            return JSONResponse(
                _error_body("job_not_found", f"job {job_id!r} does not exist"), status_code=404
            )

        async def weird(request: Request) -> Response:
            return PlainTextResponse("hello")

        return Starlette(
            routes=[
                Route("/v1/collections", collections),
                Route("/v1/jobs/{job_id}", job),
                Route("/v1/collections/{name}", weird),
            ]
        )


@pytest.fixture(scope="module")
def peer() -> Iterator[tuple[_Peer, str]]:
    state = _Peer()
    with serve_in_thread(state.app(), lifespan="off") as url:
        yield state, url


def test_key_is_sent_as_bearer(peer: tuple[_Peer, str]) -> None:
    state, url = peer
    with open_client(url, "k-123") as client:
        assert client.list_collections() == []
    assert state.seen[-1] == ("GET", "/v1/collections", "Bearer k-123")


def test_busy_server_is_retried_within_the_budget(peer: tuple[_Peer, str]) -> None:
    state, url = peer
    waits: list[float] = []
    state.busy_left = 2
    with open_client(url, None) as client:
        client._sleep = waits.append  # the CLI's budget, without the real waits
        assert client.list_collections() == []
    # Retry-After: 1 is a floor over the jittered 0.25-0.5 s and 0.5-1 s backoff.
    assert waits == [1.0, 1.0]
    state.busy_left = 3
    with open_client(url, None) as client:
        client._sleep = waits.append
        with pytest.raises(SieveClientError) as info:
            client.list_collections()
    assert (info.value.code, info.value.status) == ("upstream_unavailable", 503)
    state.busy_left = 0


def test_an_id_stays_one_path_segment(peer: tuple[_Peer, str]) -> None:
    state, url = peer
    state.seen.clear()
    with open_client(url, None) as client, pytest.raises(SieveClientError) as info:
        client.get_job("../collections")
    # Unquoted, "../" would be resolved into GET /v1/collections: another route entirely.
    assert info.value.status == 404
    assert state.seen == []


def test_a_success_that_is_not_sieves_shape_is_one_error(peer: tuple[_Peer, str]) -> None:
    _, url = peer
    with open_client(url, None) as client, pytest.raises(SieveClientError) as info:
        client.get_collection("kb")
    assert info.value.code == "bad_response"


def test_connection_refused_names_the_url_and_sieve_up() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with open_client(url, None) as client, pytest.raises(SieveClientError) as info:
        client.list_collections()
    assert info.value.code == "unreachable"
    assert api_error_message(info.value) == (
        f"cannot reach the Sieve API at {url} — is `sieve up` running?"
    )
