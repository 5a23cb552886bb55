"""Every error status of model-api.md, over real HTTP: the one body, the right headers."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from services.modelhub.registry import BUNDLED_EMBED_ID, BUNDLED_RERANK_ID
from tests.modelhub.support import BROKEN_ID, RunningHub

QUERY = "what is the capital of france"
DOCS = ["Paris is the capital of France.", "Berlin is the capital of Germany."]


def assert_error(response: httpx.Response, status: int, param: str | None = None) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == status
    assert isinstance(error["type"], str)
    assert error["type"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert "Traceback" not in response.text
    if param is not None:
        assert error["param"] == param
    message: str = error["message"]
    return message


# ---------------------------------------------------------------- 401
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": "Basic abc"}],
    ids=["missing", "wrong-key", "wrong-scheme"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/models"), ("POST", "/v1/embeddings"), ("POST", "/v1/rerank")],
)
def test_missing_or_wrong_token_is_401(
    hub: RunningHub, headers: dict[str, str], method: str, path: str
) -> None:
    # Even a malformed body gets 401 first: nothing is parsed for an unknown caller.
    response = httpx.request(method, hub.url + path, headers=headers, content=b"{not json")
    assert_error(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_health_is_open_and_every_response_has_a_request_id(hub: RunningHub) -> None:
    response = httpx.get(hub.url + "/health")
    assert response.status_code == 200
    assert len(response.headers["x-request-id"]) == 32


def test_open_mode_serves_without_a_key(strict_client: httpx.Client) -> None:
    assert strict_client.get("/v1/models").status_code == 200


# ---------------------------------------------------------------- 404
def test_unknown_model_is_404(client: httpx.Client) -> None:
    response = client.post("/v1/embeddings", json={"model": "no/such-model", "input": "x"})
    assert "no/such-model" in assert_error(response, 404, param="model")
    response = client.post(
        "/v1/rerank", json={"model": "no/such-model", "query": QUERY, "documents": DOCS}
    )
    assert_error(response, 404, param="model")


def test_unknown_path_uses_the_same_body(client: httpx.Client) -> None:
    assert_error(client.get("/v1/nothing-here"), 404)


# ---------------------------------------------------------------- 400
BAD_EMBEDDINGS: list[tuple[Any, str | None]] = [
    ({"model": BUNDLED_EMBED_ID, "input": ""}, "input[0]"),
    ({"model": BUNDLED_EMBED_ID, "input": []}, "input"),
    ({"model": BUNDLED_EMBED_ID, "input": ["ok", ""]}, "input[1]"),
    ({"model": BUNDLED_EMBED_ID, "input": 5}, None),
    ({"model": BUNDLED_EMBED_ID}, "input"),
    ({"input": "x"}, "model"),
    ({"model": BUNDLED_EMBED_ID, "input": "x", "encoding_format": "int8"}, "encoding_format"),
    ({"model": BUNDLED_EMBED_ID, "input": "x", "dimensions": 128}, "dimensions"),
    ({"model": BUNDLED_RERANK_ID, "input": "x"}, "model"),
    ({"model": BUNDLED_EMBED_ID, "input": "word " * 2000, "truncate": False}, "input[0]"),
]


@pytest.mark.parametrize(("body", "param"), BAD_EMBEDDINGS)
def test_bad_embeddings_request_is_400(
    client: httpx.Client, body: dict[str, Any], param: str | None
) -> None:
    response = client.post("/v1/embeddings", json=body)
    message = assert_error(response, 400)
    if param is not None:
        assert response.json()["error"]["param"] == param, message


BAD_RERANKS: list[tuple[dict[str, Any], str | None]] = [
    ({"query": QUERY, "documents": []}, "documents"),
    ({"query": QUERY}, "documents"),
    ({"query": "", "documents": DOCS}, "query"),
    ({"query": "   ", "documents": DOCS}, "query"),
    ({"documents": DOCS}, "query"),
    ({"query": {"nope": 1}, "documents": DOCS}, "query"),
    ({"query": QUERY, "documents": ["ok", 7]}, "documents[1]"),
    ({"query": QUERY, "documents": ["ok", {"title": "x"}]}, "documents[1]"),
    ({"query": QUERY, "documents": [{"content": []}]}, "documents[0]"),
    (
        {"query": QUERY, "documents": [{"content": [{"type": "audio", "audio": "x"}]}]},
        "documents[0].content[0]",
    ),
    ({"query": QUERY, "documents": [{"image": "https://example.com/a.png"}]}, "documents[0]"),
    (
        {
            "query": QUERY,
            "documents": [
                "ok",
                {"content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]},
            ],
        },
        "documents[1].content[0]",
    ),
    ({"query": QUERY, "documents": [{"image": "data:image/png;base64,!!!notbase64"}]}, None),
    ({"query": QUERY, "documents": [{"image": "data:text/plain;base64,aGVsbG8="}]}, None),
    ({"query": QUERY, "documents": [{"image": "data:image/png;base64,aGVsbG8="}]}, None),
    ({"query": QUERY, "documents": DOCS, "top_n": -1}, "top_n"),
    ({"query": "word " * 600, "documents": DOCS}, "query"),
    ({"model": BUNDLED_EMBED_ID, "query": QUERY, "documents": DOCS}, "model"),
    ({"query": QUERY, "documents": ["Paris " * 600], "truncate": False}, "documents[0]"),
]


@pytest.mark.parametrize(("body", "param"), BAD_RERANKS)
def test_bad_rerank_request_is_400(
    client: httpx.Client, body: dict[str, Any], param: str | None
) -> None:
    body = {"model": BUNDLED_RERANK_ID, **body}
    response = client.post("/v1/rerank", json=body)
    message = assert_error(response, 400)
    if param is not None:
        assert response.json()["error"]["param"] == param, message


def test_malformed_json_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/v1/rerank", content=b'{"query": ', headers={"content-type": "application/json"}
    )
    assert "JSON" in assert_error(response, 400)


def test_too_many_documents_and_too_long_texts_are_400(strict_client: httpx.Client) -> None:
    docs = [f"doc {n}" for n in range(9)]  # the strict hub takes 8
    response = strict_client.post("/v1/rerank", json={"query": QUERY, "documents": docs})
    assert "at most 8" in assert_error(response, 400, param="documents")
    response = strict_client.post(
        "/v1/rerank", json={"query": QUERY, "documents": ["ok", "y" * 4_001]}
    )
    assert_error(response, 400, param="documents[1]")
    response = strict_client.post(
        "/v1/embeddings", json={"model": BUNDLED_EMBED_ID, "input": ["a"] * 5}
    )
    assert_error(response, 400, param="input")


def test_pair_over_context_with_truncation_off_names_the_document(
    strict_client: httpx.Client,
) -> None:
    docs = ["short", "fine too", "Paris " * 600]
    response = strict_client.post("/v1/rerank", json={"query": QUERY, "documents": docs})
    message = assert_error(response, 400, param="documents[2]")
    assert "document 2" in message
    # The request can turn truncation back on.
    ok = strict_client.post(
        "/v1/rerank", json={"query": QUERY, "documents": docs, "truncate": True}
    )
    assert ok.status_code == 200
    response = strict_client.post(
        "/v1/embeddings", json={"model": BUNDLED_EMBED_ID, "input": ["ok", "word " * 600]}
    )
    assert_error(response, 400, param="input[1]")


# ---------------------------------------------------------------- 413
def test_body_over_the_limit_is_413(strict_client: httpx.Client) -> None:
    big = {"query": QUERY, "documents": ["x" * 1_000] * 80}  # ~80 KB > 64 KiB
    assert_error(strict_client.post("/v1/rerank", json=big), 413)


def test_streamed_body_over_the_limit_is_413(strict_client: httpx.Client) -> None:
    def chunks() -> Any:
        yield b'{"query": "q", "documents": ["'
        for _ in range(80):
            yield b"x" * 1_000
        yield b'"]}'

    response = strict_client.post(
        "/v1/rerank", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(response, 413)


# ---------------------------------------------------------------- 429
def test_over_the_rate_limit_is_429_with_retry_after(limited_hub: RunningHub) -> None:
    with httpx.Client(base_url=limited_hub.url, timeout=30) as c:
        statuses = [c.get("/v1/models") for _ in range(3)]
    assert [r.status_code for r in statuses[:2]] == [200, 200]
    assert_error(statuses[2], 429)
    assert int(statuses[2].headers["retry-after"]) >= 1


# ---------------------------------------------------------------- 503
def test_full_queue_is_503_with_retry_after(strict_hub: RunningHub) -> None:
    docs = [f"Paris is the capital of France, part {n}. " * 40 for n in range(8)]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=strict_hub.url, timeout=60) as c:
            calls = [
                c.post("/v1/rerank", json={"query": QUERY, "documents": docs}) for _ in range(6)
            ]
            return await asyncio.gather(*calls)

    responses = asyncio.run(burst())
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses
    assert 503 in statuses
    assert set(statuses) <= {200, 503}
    for response in responses:
        if response.status_code == 503:
            assert_error(response, 503)
            assert int(response.headers["retry-after"]) >= 1


# ---------------------------------------------------------------- 500
def test_internal_failure_is_a_generic_500(strict_client: httpx.Client) -> None:
    response = strict_client.post(
        "/v1/rerank", json={"model": BROKEN_ID, "query": QUERY, "documents": DOCS}
    )
    assert assert_error(response, 500) == "internal error"
    assert response.json()["error"]["type"] == "server_error"
    assert "secret-detail" not in response.text
    assert "/srv/internal" not in response.text
    # The hub keeps serving after a failed batch.
    ok = strict_client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
    assert ok.status_code == 200
