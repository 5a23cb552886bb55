"""sieve_client's pure parts: retry timing, multipart bodies, request checks, and the error
mapping for answers a Sieve API never sends itself (a rate-limiting gateway, a proxy page)."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from datetime import UTC, datetime

import httpx
import pytest
from sieve_client import (
    AsyncSieveClient,
    BadResponseError,
    InvalidRequestError,
    RateLimitedError,
    ServerError,
    SieveClient,
    ValidationFailedError,
)
from sieve_client import protocol as p
from sieve_client.errors import error_from_response


def test_a_retry_after_over_the_cap_is_raised_at_once_with_the_hint() -> None:
    # The one retry rule (core/retry.py): it used to be cut to the cap (30 s) and waited.
    waits: list[float] = []
    replies = [httpx.Response(429, headers={"Retry-After": "120"}, text="later"), _ok()]
    client = SieveClient("http://api", sleep=waits.append, transport=_gateway(replies))
    with client, pytest.raises(RateLimitedError) as limited:
        client.list_collections()
    assert waits == []
    assert limited.value.retry_after == 120.0


def test_retry_after_dates_are_honoured_and_short_ones_do_not_skip_the_backoff() -> None:
    waits: list[float] = []
    date = email.utils.formatdate(time.time() + 8, usegmt=True)
    replies = [
        httpx.Response(503, headers={"Retry-After": date}),
        httpx.Response(503, headers={"Retry-After": "0"}),
        _ok(),
    ]
    client = SieveClient(
        "http://api", sleep=waits.append, rng=lambda: 0.0, transport=_gateway(replies)
    )
    with client:
        assert client.list_collections() == []
    assert 6.5 <= waits[0] <= 8.0
    assert waits[1] == 0.5  # "Retry-After: 0" used to mean no wait at all


def test_multipart_body_names_every_file_and_escapes_quotes() -> None:
    call = p.upload_files("kb", [('a "b".md', b"# A"), ("c.txt", b"C")], boundary="XYZ")
    assert call.headers["Content-Type"] == "multipart/form-data; boundary=XYZ"
    assert call.body is not None
    body = call.body.decode()
    assert body.count('name="files"') == 2
    assert 'filename="a %22b%22.md"' in body
    assert body.endswith("--XYZ--\r\n")
    with pytest.raises(ValueError, match="at least one file"):
        p.upload_files("kb", [])


def test_progress_reports_every_piece_in_order() -> None:
    seen: list[p.UploadProgress] = []
    pieces = list(p.upload_chunks(b"x" * 150_000, 2, seen.append))
    assert b"".join(pieces) == b"x" * 150_000
    assert [s.sent_bytes for s in seen] == [0, 65_536, 131_072, 150_000]
    assert seen[-1].fraction == 1.0


def test_every_id_is_one_segment_no_normalisation_can_climb_out_of() -> None:
    assert p.get_collection("a/../b").path == "/v1/collections/a%2F..%2Fb"
    assert p.get_job("x?y").path == "/v1/jobs/x%3Fy"
    docs = "/v1/collections/kb/documents/"
    assert p.get_document("kb", "dir/a b.md").path == docs + "dir%2Fa%20b.md"
    assert p.delete_document("notes", "../../victim").path == (
        "/v1/collections/notes/documents/..%2F..%2Fvictim"
    )
    assert p.delete_document("kb", "..").path == docs + "%2E%2E"
    assert p.get_document("kb", ".").path == docs + "%2E"
    assert p.get_document("kb", "100%#?").path == docs + "100%25%23%3F"
    for hostile in ("../../victim", "..", ".", "a/./b", "..\\x"):
        path = p.delete_document("kb", hostile).path
        # httpx sends the path as built: nothing in it is a dot segment to collapse.
        sent = httpx.Request("DELETE", "http://api" + path).url.raw_path.decode()
        assert sent == path, hostile
        assert sent.startswith(docs), hostile
    with pytest.raises(ValueError, match="empty"):
        p.delete_document("kb", "")


def test_requests_are_checked_before_they_are_sent() -> None:
    with pytest.raises(ValidationFailedError) as bad:
        p.query("kb", "q", top_n=0)
    assert bad.value.status is None
    assert bad.value.details[0]["loc"] == ("top_n",)
    with pytest.raises(ValidationFailedError):
        p.create_collection("no spaces allowed")
    with pytest.raises(ValidationFailedError):
        p.query("kb", "q", filter={"unknown": 1})
    multi = p.query(["a", "b"], "q", top_n=3)
    assert (multi.path, multi.json["collections"], multi.json["top_n"]) == (
        "/v1/query",
        ["a", "b"],
        3,
    )
    assert "top_k" not in p.query("kb", "q").json  # unset knobs leave the server's defaults


def _gateway(replies: list[httpx.Response]) -> httpx.MockTransport:
    """A rate-limiting gateway in front of the API (Sieve itself never answers 429)."""

    def handle(request: httpx.Request) -> httpx.Response:
        return replies.pop(0)

    return httpx.MockTransport(handle)


def _ok() -> httpx.Response:
    return httpx.Response(200, json={"collections": []})


def test_429_is_retried_after_retry_after_then_raised_typed() -> None:
    waits: list[float] = []
    replies = [httpx.Response(429, headers={"Retry-After": "2"}, text="slow down"), _ok()]
    with SieveClient("http://api", sleep=waits.append, transport=_gateway(replies)) as client:
        assert client.list_collections() == []
    assert waits == [2.0]

    waits.clear()
    replies = [httpx.Response(429, text="slow down") for _ in range(3)]
    with (
        SieveClient(
            "http://api",
            max_retries=2,
            sleep=waits.append,
            rng=lambda: 1.0,  # the top of the jitter range (the unified rule adds jitter)
            transport=_gateway(replies),
        ) as client,
        pytest.raises(RateLimitedError) as limited,
    ):
        client.list_collections()
    assert waits == [0.5, 1.0]
    assert limited.value.code == "http_429"
    assert "slow down" in limited.value.message


def test_the_async_twin_retries_the_same_way() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    class Gateway(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.replies = [httpx.Response(503, headers={"Retry-After": "1"}), _ok()]

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return self.replies.pop(0)

    async def main() -> None:
        async with AsyncSieveClient("http://api", sleep=sleep, transport=Gateway()) as client:
            assert await client.list_collections() == []

    asyncio.run(main())
    assert waits == [1.0]


def test_a_proxy_page_and_a_foreign_body_are_reported_as_such() -> None:
    page = httpx.Response(500, text="<html><body>Bad gateway   here</body></html>")
    client = SieveClient("http://api", transport=_gateway([page]))
    with client, pytest.raises(ServerError) as crashed:
        client.list_collections()
    assert crashed.value.message.endswith("<html><body>Bad gateway here</body></html>")
    client = SieveClient("http://api", transport=_gateway([httpx.Response(200, text="hi")]))
    with client, pytest.raises(BadResponseError, match="not JSON"):
        client.list_collections()
    wrong = httpx.Response(200, content=json.dumps({"collections": [{"name": 1}]}).encode())
    client = SieveClient("http://api", transport=_gateway([wrong]))
    with client, pytest.raises(BadResponseError, match="is this a Sieve API"):
        client.list_collections()


def test_an_error_about_one_field_names_it() -> None:
    body = {
        "error": {
            "code": "invalid_number",
            "message": "filter.page: integer out of the 64-bit range",
            "request_id": "r1",
            "field": "filter.page",
        }
    }
    req = httpx.Request("POST", "http://api.test/v1/collections/kb/query")
    err = error_from_response(httpx.Response(400, json=body, request=req))
    assert isinstance(err, InvalidRequestError)
    assert (err.code, err.status, err.field) == ("invalid_number", 400, "filter.page")
    del body["error"]["field"]
    assert error_from_response(httpx.Response(400, json=body, request=req)).field is None


def test_upload_expiry_goes_in_the_query_and_a_naive_datetime_is_refused() -> None:
    call = p.upload_records("c", [{"id": "a", "text": "x"}])
    assert p.with_expiry(call, None, None) is call
    at = datetime(2030, 1, 31, 12, tzinfo=UTC)
    assert p.with_expiry(call, at, None).params == {"expires_at": "2030-01-31T12:00:00+00:00"}
    assert p.with_expiry(call, "2030-01-31T12:00:00Z", None).params == {
        "expires_at": "2030-01-31T12:00:00Z"
    }
    waited = p.wait_for_upload(p.with_expiry(call, None, 90), wait=True, timeout_s=5)
    assert waited.params == {"ttl_s": "90.0", "wait": "true", "timeout_s": "5"}
    with pytest.raises(ValueError, match="timezone"):
        p.with_expiry(call, datetime(2030, 1, 31), None)
    with pytest.raises(ValueError, match="not both"):
        p.with_expiry(call, at, 90)
