"""HttpReranker against httpx.MockTransport peers: dialects, retries, errors, breaker, splitting."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from core.errors import InvalidInput, SieveError, UpstreamRejected, UpstreamUnavailable
from core.image_tokens import IMAGE_MAX_PIXELS
from core.logs import JsonFormatter
from reranker.breaker import BreakerState, CircuitBreaker
from reranker.budget import PairBudget, estimate_tokens
from reranker.codes import RerankErrorCode
from reranker.documents import RerankDocument
from reranker.rerank_client import HttpReranker, RerankResult
from tests.clocks import FakeClock
from tests.reranker.peers import (
    DOCUMENTS,
    EXPECTED_ORDER,
    QUERY,
    document_text,
    peer_handler,
    relevance,
    respond,
)

pytestmark = pytest.mark.anyio

BASE_URL = "http://hub.test/v1"
KEY = "jwt-secret-token-value"


class Sleeps:
    """Records backoff delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@asynccontextmanager
async def reranker(
    handler: Callable[[httpx.Request], Any], **kwargs: Any
) -> AsyncIterator[HttpReranker]:
    """An HttpReranker over a MockTransport; backoff sleeps are recorded, not waited."""
    kwargs.setdefault("sleep", Sleeps())
    kwargs.setdefault("rng", lambda: 1.0)
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(handler), base_url=BASE_URL
    ) as client:
        yield HttpReranker(client, model="Qwen/Qwen3-VL-Reranker-8B", **kwargs)


def _docs(texts: list[str] = DOCUMENTS) -> list[RerankDocument]:
    return [RerankDocument(t) for t in texts]


class Counting:
    """A handler that counts calls and answers from a script of responses."""

    def __init__(self, *responses: httpx.Response | Exception, then: str | None = "ionos"):
        self.script = list(responses)
        self.then = then
        self.calls = 0
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.requests.append(request)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            return step
        assert self.then is not None, "peer called more often than scripted"
        return respond(self.then, json.loads(request.content))


async def test_the_request_is_strict_and_authenticated() -> None:
    handler = Counting()
    async with reranker(handler, api_key=SecretStr(KEY)) as client:
        await client.rerank(QUERY, _docs())
    request = handler.requests[0]
    assert request.method == "POST"
    assert str(request.url) == f"{BASE_URL}/rerank"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = json.loads(request.content)
    assert body == {
        "model": "Qwen/Qwen3-VL-Reranker-8B",
        "query": QUERY,
        "documents": DOCUMENTS,
        "top_n": len(DOCUMENTS),  # every score back: the policy cuts, not the peer
    }


async def test_no_auth_header_without_a_key() -> None:
    handler = Counting()
    async with reranker(handler) as client:
        await client.rerank(QUERY, _docs())
    assert "authorization" not in handler.requests[0].headers


async def test_a_peer_that_cuts_to_its_own_top_n_leaves_the_rest_unscored() -> None:
    def cut(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"results": [{"index": 2, "relevance_score": 0.7}]})

    async with reranker(cut) as client:
        result = await client.rerank(QUERY, _docs())
    assert result.scores == (None, None, 0.7, None)
    assert result.order() == [2, 0, 1, 3]


async def test_no_documents_no_request() -> None:
    handler = Counting(then=None)
    async with reranker(handler) as client:
        result = await client.rerank(QUERY, [])
    assert result == RerankResult(model="Qwen/Qwen3-VL-Reranker-8B", scores=())
    assert handler.calls == 0


async def test_an_empty_query_is_invalid_input() -> None:
    async with reranker(Counting(then=None)) as client:
        with pytest.raises(InvalidInput):
            await client.rerank("  ", _docs())


# ---------------------------------------------------------------- retries


async def test_429_with_retry_after_then_success() -> None:
    sleeps = Sleeps()
    handler = Counting(
        httpx.Response(429, headers={"Retry-After": "2"}, json={"error": {"message": "slow"}}),
        httpx.Response(429, headers={"Retry-After": "1"}, json={"error": {"message": "slow"}}),
    )
    async with reranker(handler, sleep=sleeps, backoff_base_s=0.1) as client:
        result = await client.rerank(QUERY, _docs())
    assert result.order() == EXPECTED_ORDER
    assert handler.calls == 3
    assert sleeps.delays == [2.0, 1.0]  # Retry-After is honoured over a shorter backoff


async def test_retry_after_as_an_http_date_is_honoured() -> None:
    sleeps = Sleeps()
    handler = Counting(
        httpx.Response(503, headers={"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}),
    )
    async with reranker(handler, sleep=sleeps, backoff_base_s=0.5) as client:
        await client.rerank(QUERY, _docs())
    assert sleeps.delays == [0.5]  # a past date: the backoff alone


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_retried_then_given_up(status: int) -> None:
    sleeps = Sleeps()
    handler = Counting(*[httpx.Response(status, json={"message": "boom"})] * 10, then=None)
    async with reranker(handler, sleep=sleeps, max_retries=3, backoff_base_s=0.5) as client:
        with pytest.raises(UpstreamUnavailable) as info:
            await client.rerank(QUERY, _docs())
    assert handler.calls == 4
    assert info.value.code == RerankErrorCode.UNAVAILABLE
    assert f"answered {status}: boom" in info.value.message
    assert sleeps.delays == [0.5, 1.0, 2.0]  # exponential (jitter pinned at its top)


async def test_429_exhausted_is_rate_limited() -> None:
    handler = Counting(*[httpx.Response(429)] * 3, then=None)
    async with reranker(handler, max_retries=2) as client:
        with pytest.raises(UpstreamUnavailable) as info:
            await client.rerank(QUERY, _docs())
    assert info.value.code == RerankErrorCode.RATE_LIMITED
    assert handler.calls == 3


async def test_a_retry_after_too_long_to_wait_gives_up_at_once() -> None:
    handler = Counting(httpx.Response(429, headers={"Retry-After": "120"}), then=None)
    async with reranker(handler, max_retry_after_s=10) as client:
        with pytest.raises(UpstreamUnavailable) as info:
            await client.rerank(QUERY, _docs())
    assert handler.calls == 1
    assert info.value.retry_after == 120.0


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            400,
            {
                "error": {
                    "message": "document 3 is over the context",
                    "type": "invalid",
                    "code": 400,
                }
            },
        ),
        (
            401,
            {"httpStatus": 401, "messages": [{"errorCode": "paas-auth-1", "message": "bad token"}]},
        ),
        (
            404,
            {"object": "error", "message": "model not found", "type": "NotFoundError", "code": 404},
        ),
        (413, {"error": "payload too large"}),
        (422, {"detail": "unprocessable"}),
        (501, {"message": "not implemented"}),
    ],
)
async def test_client_errors_are_never_retried(status: int, body: dict[str, Any]) -> None:
    handler = Counting(httpx.Response(status, json=body), then=None)
    async with reranker(handler) as client:
        with pytest.raises(SieveError) as info:
            await client.rerank(QUERY, _docs())
    assert handler.calls == 1
    if status < 500:
        assert isinstance(info.value, UpstreamRejected)
        assert info.value.status == status
        assert info.value.code == RerankErrorCode.REJECTED
    else:
        assert isinstance(info.value, UpstreamUnavailable)


async def test_ionos_401_logs_the_trace_id_and_never_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = {"httpStatus": 401, "messages": [{"errorCode": "paas-auth-1", "message": "bad token"}]}
    handler = Counting(
        httpx.Response(401, json=body, headers={"x-trace-id": "trace-42"}), then=None
    )
    caplog.set_level(logging.DEBUG, logger="reranker")
    async with reranker(handler, api_key=SecretStr(KEY)) as client:
        with pytest.raises(UpstreamRejected, match="401: bad token"):
            await client.rerank(QUERY, _docs())
        assert KEY not in repr(client)
    records = [r for r in caplog.records if r.name.startswith("reranker")]
    assert any(getattr(r, "trace_id", None) == "trace-42" for r in records)
    assert any(getattr(r, "peer_code", None) == "paas-auth-1" for r in records)
    formatter = JsonFormatter()
    assert all(KEY not in formatter.format(r) for r in records)


# ---------------------------------------------------------------- transport failures


async def test_timeouts_are_retried_then_mapped_to_timeout() -> None:
    handler = Counting(*[httpx.ReadTimeout("slow")] * 3, then=None)
    async with reranker(handler, max_retries=2) as client:
        with pytest.raises(UpstreamUnavailable) as info:
            await client.rerank(QUERY, _docs())
    assert handler.calls == 3
    assert info.value.code == RerankErrorCode.TIMEOUT
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)  # chained, not swallowed


async def test_a_timeout_then_success_recovers() -> None:
    handler = Counting(httpx.ConnectTimeout("no answer"))
    async with reranker(handler) as client:
        result = await client.rerank(QUERY, _docs())
    assert result.order() == EXPECTED_ORDER
    assert handler.calls == 2


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ReadError("reset"),
        httpx.RemoteProtocolError("garbage"),
        httpx.PoolTimeout("pool"),
        httpx.WriteTimeout("write"),
        httpx.DecodingError("bad gzip"),
    ],
)
async def test_no_httpx_exception_escapes_unmapped(exc: Exception) -> None:
    handler = Counting(*[exc] * 5, then=None)
    async with reranker(handler, max_retries=1) as client:
        with pytest.raises(UpstreamUnavailable) as info:
            await client.rerank(QUERY, _docs())
    expected = RerankErrorCode.TIMEOUT if isinstance(exc, httpx.TimeoutException) else None
    assert info.value.code == (expected or RerankErrorCode.UNAVAILABLE)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>ok</html>"),
        httpx.Response(200, json={"results": [{"index": 9, "relevance_score": 0.5}]}),
        httpx.Response(200, json={"object": "list"}),
        httpx.Response(302, headers={"location": "http://elsewhere/"}),
    ],
)
async def test_unreadable_answers_are_bad_responses_not_retried(response: httpx.Response) -> None:
    handler = Counting(response, then=None)
    async with reranker(handler) as client:
        with pytest.raises(UpstreamUnavailable) as info:
            await client.rerank(QUERY, _docs())
    assert info.value.code == RerankErrorCode.BAD_RESPONSE
    assert handler.calls == 1


async def test_total_timeout_bounds_the_whole_call() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json={"results": []})

    async with reranker(slow, total_timeout_s=0.05, sleep=asyncio.sleep) as client:
        with pytest.raises(UpstreamUnavailable) as info:
            await client.rerank(QUERY, _docs())
    assert info.value.code == RerankErrorCode.TIMEOUT


# ---------------------------------------------------------------- circuit breaker


async def test_breaker_opens_fails_fast_and_recovers_half_open() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=30, clock=clock)
    handler = Counting(*[httpx.Response(503)] * 2)  # two failed calls, then healthy
    async with reranker(handler, breaker=breaker, max_retries=0) as client:
        for _ in range(2):
            with pytest.raises(UpstreamUnavailable):
                await client.rerank(QUERY, _docs())
        assert breaker.state is BreakerState.OPEN
        with pytest.raises(UpstreamUnavailable) as info:
            await client.rerank(QUERY, _docs())
        assert info.value.code == RerankErrorCode.CIRCUIT_OPEN
        assert info.value.retry_after == 30
        assert handler.calls == 2  # the open breaker never called the peer
        clock.now += 30
        result = await client.rerank(QUERY, _docs())  # the half-open probe
        assert result.order() == EXPECTED_ORDER
        assert client.breaker.state is BreakerState.CLOSED
        assert handler.calls == 3


async def test_rejections_do_not_open_the_breaker() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=30, clock=FakeClock())
    handler = Counting(httpx.Response(400, json={"error": "bad"}))
    async with reranker(handler, breaker=breaker) as client:
        with pytest.raises(UpstreamRejected):
            await client.rerank(QUERY, _docs())
        assert breaker.state is BreakerState.CLOSED


# ---------------------------------------------------------------- splitting and merging


async def test_split_requests_run_concurrently_and_merge_by_score() -> None:
    in_flight = 0
    peak = 0
    bodies: list[dict[str, Any]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        body = json.loads(request.content)
        bodies.append(body)
        return respond("ionos", body)

    texts = [f"doc {i} " + "apple " * (i % 4) for i in range(11)]
    query = "apple apple apple doc"
    async with reranker(
        handler, max_documents_per_request=3, max_concurrency=2, sleep=asyncio.sleep
    ) as client:
        result = await client.rerank(query, _docs(texts))
    assert len(bodies) == 4  # 3 + 3 + 3 + 2
    assert all(len(b["documents"]) <= 3 for b in bodies)
    assert peak == 2  # concurrent, and bounded
    assert result.requests == 4
    assert result.scores == tuple(relevance(query, t) for t in texts)
    expected = sorted(range(11), key=lambda i: (-relevance(query, texts[i]), i))
    assert result.order() == expected


async def test_logits_are_squashed_consistently_across_batches() -> None:
    # Batch one's logits happen to lie inside [0, 1]; batch two's do not. All are logits.
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        logits = {"a": 0.9, "b": 0.1, "c": 3.0, "d": -2.0}
        results = [
            {"index": i, "relevance_score": logits[d]} for i, d in enumerate(body["documents"])
        ]
        return httpx.Response(200, json={"results": results})

    async with reranker(handler, max_documents_per_request=2) as client:
        result = await client.rerank("q", _docs(["a", "b", "c", "d"]))
    scores = result.scores
    assert scores[0] == pytest.approx(0.7109, abs=1e-4)  # sigmoid(0.9), not 0.9
    assert result.order() == [2, 0, 1, 3]


async def test_one_failed_batch_fails_the_call_with_the_domain_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if "bad" in body["documents"]:
            return httpx.Response(404, json={"error": {"message": "model not found"}})
        return respond("ionos", body)

    async with reranker(handler, max_documents_per_request=1) as client:
        with pytest.raises(UpstreamRejected) as info:
            await client.rerank("q", _docs(["ok", "bad", "ok"]))
    assert info.value.status == 404


# ---------------------------------------------------------------- images and budget


def _sent_image_size(uri: str) -> tuple[int, int]:
    header, payload = uri.split(",", 1)
    assert header.startswith("data:image/")
    return Image.open(io.BytesIO(base64.b64decode(payload))).size


async def test_images_are_resized_and_sent_as_data_uris(
    make_image: Callable[..., bytes],
) -> None:
    seen: list[dict[str, Any]] = []
    docs = [
        RerankDocument("apple pie photo", images=(make_image(1296, 1936, "JPEG"),)),
        RerankDocument("plain text about cars"),
    ]
    async with reranker(peer_handler("ionos", seen)) as client:
        result = await client.rerank(QUERY, docs)
    assert result.order() == [0, 1]
    image_doc, text_doc = seen[0]["documents"]
    assert text_doc == "plain text about cars"
    image_part, text_part = image_doc["content"]
    assert image_part["type"] == "image_url"
    width, height = _sent_image_size(image_part["image_url"]["url"])
    assert (width, height) == (928, 1376)
    assert width * height <= IMAGE_MAX_PIXELS
    assert text_part == {"type": "text", "text": "apple pie photo"}


async def test_mixed_image_batch_refused_falls_back_to_one_image_per_request(
    make_image: Callable[..., bytes],
) -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if sum(isinstance(d, dict) for d in body["documents"]) > 1:
            return httpx.Response(400, json={"error": {"message": "one image per request"}})
        return respond("ionos", body)

    image = make_image(64, 64)
    docs = [
        RerankDocument("apple", images=(image,)),
        RerankDocument("apple pie"),
        RerankDocument("apple pie recipe", images=(image,)),
        RerankDocument("car"),
    ]
    async with reranker(handler) as client:
        result = await client.rerank(QUERY, docs)
    assert len(bodies) == 4  # the refused mixed batch, then texts, image 0, image 2
    assert result.order() == [2, 1, 0, 3]
    assert result.scores == tuple(relevance(QUERY, d.text) for d in docs)


async def test_a_text_only_400_is_not_re_split() -> None:
    handler = Counting(httpx.Response(400, json={"error": {"message": "bad"}}), then=None)
    async with reranker(handler) as client:
        with pytest.raises(UpstreamRejected):
            await client.rerank(QUERY, _docs())
    assert handler.calls == 1


async def test_images_per_request_cap_splits_requests(make_image: Callable[..., bytes]) -> None:
    seen: list[dict[str, Any]] = []
    image = make_image(64, 64)
    docs = [RerankDocument(f"doc {i}", images=(image, image)) for i in range(5)]
    async with reranker(peer_handler("ionos", seen), max_images_per_request=4) as client:
        result = await client.rerank("doc", docs)
    assert [len(b["documents"]) for b in seen] == [2, 2, 1]
    assert result.requests == 3


async def test_undecodable_images_are_dropped_not_fatal(make_image: Callable[..., bytes]) -> None:
    seen: list[dict[str, Any]] = []
    docs = [RerankDocument("apple pie", images=(b"not an image", make_image(64, 64)))]
    async with reranker(peer_handler("ionos", seen)) as client:
        result = await client.rerank(QUERY, docs)
    assert result.images_dropped == 1
    assert len(seen[0]["documents"][0]["content"]) == 2  # one image part and the text


async def test_pairs_are_budgeted_against_the_model_context(
    make_image: Callable[..., bytes],
) -> None:
    seen: list[dict[str, Any]] = []
    budget = PairBudget(context_tokens=300, overhead_tokens=12)
    long_text = "relevant words " * 2000
    docs = [
        RerankDocument(long_text),
        # 64 tokens, then 256: the second image no longer fits next to the first.
        RerankDocument(long_text, images=(make_image(256, 256), make_image(512, 512))),
    ]
    async with reranker(peer_handler("ionos", seen), budget=budget) as client:
        result = await client.rerank("a query", docs)
    room = 300 - 12 - estimate_tokens("a query")
    text_doc, image_doc = seen[0]["documents"]
    assert room - 5 <= estimate_tokens(text_doc) <= room
    parts = image_doc["content"]
    assert [p["type"] for p in parts] == ["image_url", "text"]
    assert _sent_image_size(parts[0]["image_url"]["url"]) == (256, 256)
    assert estimate_tokens(document_text(image_doc)) <= room - 64
    assert result.texts_truncated == 2
    assert result.images_dropped == 1


async def test_a_tokenizer_can_be_injected() -> None:
    seen: list[dict[str, Any]] = []
    budget = PairBudget(context_tokens=30, overhead_tokens=5)

    def words(text: str) -> int:
        return len(text.split())

    async with reranker(peer_handler("ionos", seen), budget=budget, tokenizer=words) as client:
        await client.rerank("two words", _docs(["w " * 100]))
    assert words(seen[0]["documents"][0]) == 30 - 5 - 2


async def test_a_long_query_is_cut_to_the_models_context_and_said_so() -> None:
    seen: list[str] = []

    def strict_512(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body["query"])
        # A 512-token model that counts one token per byte of the query (symbol-dense text).
        if len(body["query"].encode()) + 3 >= 512:
            message = "the query needs too many tokens for the 512-token pair budget"
            return httpx.Response(400, json={"error": {"message": message, "type": "invalid"}})
        return respond("ionos", body)

    query = QUERY + " " + "%$#@!" * 300
    async with reranker(strict_512, budget=PairBudget(model_context_tokens=512)) as r:
        result = await r.rerank(query, _docs())
    assert result.query_truncated
    assert all(s is not None for s in result.scores)
    assert len(seen) == 2  # the estimate's cut, refused; then the strict cut, accepted
    assert query.startswith(seen[-1])
    assert len(seen[-1].encode()) <= 256
    async with reranker(strict_512, budget=PairBudget(model_context_tokens=512)) as r:
        assert not (await r.rerank(QUERY, _docs())).query_truncated


async def test_without_a_stated_context_a_refusal_is_not_retried() -> None:
    peer = Counting(httpx.Response(400, json={"error": {"message": "no", "type": "invalid"}}))
    async with reranker(peer) as r:
        with pytest.raises(UpstreamRejected):
            await r.rerank(QUERY + " long" * 5000, _docs())
    assert peer.calls == 1
