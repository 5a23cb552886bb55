"""Every row of model-api.md, over real HTTP against the running hub."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import numpy as np
import pytest
from tokenizers import Tokenizer

from services.modelhub.app import RERANK_PATHS
from services.modelhub.registry import (
    BGE_QUERY_PREFIX,
    BUNDLED_EMBED_ID,
    BUNDLED_RERANK_ID,
    bundled_data_dir,
)
from tests.modelhub.support import WIDE_RERANK_ID, png_data_uri

QUERY = "what is the capital of france"
DOCS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital and largest city of France.",
    "Bananas are rich in potassium.",
]


def _tokenizer(name: str) -> Tokenizer:
    tok = Tokenizer.from_file(str(bundled_data_dir() / name / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


EMBED_TOK = _tokenizer("bge_small_en")
RERANK_TOK = _tokenizer("reranker_en")


def pair_tokens(query: str, doc: str) -> int:
    return len(RERANK_TOK.encode(query, doc).ids)


def rerank(client: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("model", BUNDLED_RERANK_ID)
    response = client.post("/v1/rerank", json=body)
    assert response.status_code == 200, response.text
    out: dict[str, Any] = response.json()
    return out


def embed(client: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("model", BUNDLED_EMBED_ID)
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 200, response.text
    out: dict[str, Any] = response.json()
    return out


# ---------------------------------------------------------------- /v1/models
def test_models_lists_ids_and_optional_extras(client: httpx.Client) -> None:
    response = client.get("/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    cards = {card["id"]: card for card in body["data"]}
    assert {BUNDLED_EMBED_ID, BUNDLED_RERANK_ID} <= set(cards)
    for card in cards.values():
        assert card["object"] == "model"
        assert isinstance(card["created"], int)
        assert card["owned_by"] == "sieve"
    assert "embed" in cards[BUNDLED_EMBED_ID]["capabilities"]
    assert cards[BUNDLED_EMBED_ID]["dimensions"] == 384
    rerank_card = cards[BUNDLED_RERANK_ID]
    assert rerank_card["capabilities"] == ["rerank", "text-only"]
    assert rerank_card["max_model_len"] == 512
    assert "text part" in rerank_card["notes"]
    assert cards[WIDE_RERANK_ID]["max_model_len"] == 32_768


# ---------------------------------------------------------------- /v1/embeddings
def test_embedding_of_one_string(client: httpx.Client) -> None:
    body = embed(client, input="hello world")
    assert body["object"] == "list"
    assert body["model"] == BUNDLED_EMBED_ID
    [item] = body["data"]
    assert item["object"] == "embedding"
    assert item["index"] == 0
    vec = np.array(item["embedding"])
    assert vec.shape == (384,)
    assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-4)
    expected = len(EMBED_TOK.encode("hello world").ids)
    assert body["usage"] == {"prompt_tokens": expected, "total_tokens": expected}


def test_embeddings_of_a_list_keep_input_order(client: httpx.Client) -> None:
    texts = ["a cat sat on the mat", "quarterly revenue grew by ten percent", "x" * 300]
    body = embed(client, input=texts)
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    usage = sum(len(EMBED_TOK.encode(t).ids) for t in texts)
    assert body["usage"]["prompt_tokens"] == usage
    for n, text in enumerate(texts):
        alone = np.array(embed(client, input=text)["data"][0]["embedding"])
        batched = np.array(body["data"][n]["embedding"])
        # INT8 dynamic quantisation moves vectors slightly with batch composition.
        assert float(alone @ batched) > 0.99


def test_base64_encoding_is_little_endian_float32_of_the_same_vector(
    client: httpx.Client,
) -> None:
    floats = embed(client, input=["base64 check"])["data"][0]["embedding"]
    raw = embed(client, input=["base64 check"], encoding_format="base64")["data"][0]["embedding"]
    decoded = np.frombuffer(base64.b64decode(raw), dtype="<f4")
    assert decoded.shape == (384,)
    np.testing.assert_allclose(decoded, np.array(floats, dtype=np.float32), atol=1e-6)


def test_native_dimensions_accepted_and_user_and_unknown_fields_ignored(
    client: httpx.Client,
) -> None:
    body = embed(client, input="x y z", dimensions=384, user="u-1", frobnicate={"a": 1})
    assert len(body["data"][0]["embedding"]) == 384


def test_query_input_type_applies_the_model_prefix(client: httpx.Client) -> None:
    text = "how do vaccines work"
    as_query = embed(client, input=text, input_type="query")
    explicit = embed(client, input=BGE_QUERY_PREFIX + text)
    plain = embed(client, input=text)
    q = np.array(as_query["data"][0]["embedding"])
    assert float(q @ np.array(explicit["data"][0]["embedding"])) > 0.9999
    assert float(q @ np.array(plain["data"][0]["embedding"])) < 0.999
    assert as_query["usage"] == explicit["usage"]


def test_long_input_is_truncated_to_the_model_limit_by_default(client: httpx.Client) -> None:
    body = embed(client, input="word " * 2_000)
    assert body["usage"]["prompt_tokens"] == 512


# ---------------------------------------------------------------- /v1/rerank
def test_rerank_client_request_and_response_shape(client: httpx.Client) -> None:
    body = rerank(client, query=QUERY, documents=DOCS, top_n=2)
    assert body["id"].startswith("rerank-")
    uuid.UUID(body["id"].removeprefix("rerank-"))
    assert body["model"] == BUNDLED_RERANK_ID
    results = body["results"]
    assert len(results) == 2
    assert results[0]["index"] == 1
    assert results[0]["document"] == {"text": DOCS[1]}
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] > 0.9
    # usage sums every pair, not only the top_n returned
    total = sum(pair_tokens(QUERY, d) for d in DOCS)
    assert body["usage"] == {"prompt_tokens": total, "total_tokens": total}


@pytest.mark.parametrize("path", RERANK_PATHS)
def test_rerank_is_served_on_every_alias_path(client: httpx.Client, path: str) -> None:
    response = client.post(
        path, json={"model": BUNDLED_RERANK_ID, "query": QUERY, "documents": DOCS}
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["index"] == 1


def test_every_document_shape_in_one_request(client: httpx.Client) -> None:
    img = png_data_uri(512, 512)  # 256 tokens
    docs: list[Any] = [
        "Paris is the capital of France.",
        {"text": "Berlin is the capital of Germany."},
        {"image": img},
        {"text": "Paris skyline at night, France's capital", "image": img},
        {
            "content": [
                {"type": "image_url", "image_url": {"url": img}},
                {"type": "text", "text": "Photo of the capital of France"},
            ]
        },
    ]
    body = rerank(client, query=QUERY, documents=docs)
    by_index = {r["index"]: r for r in body["results"]}
    assert sorted(by_index) == [0, 1, 2, 3, 4]
    assert by_index[0]["document"] == {"text": docs[0]}
    assert by_index[1]["document"] == {"text": docs[1]["text"]}
    image_part = {"type": "image_url", "image_url": {"url": img}}
    assert by_index[2]["document"] == {"multi_modal": [image_part]}
    assert by_index[3]["document"] == {"multi_modal": [image_part], "text": docs[3]["text"]}
    assert by_index[4]["document"] == {
        "multi_modal": [image_part],
        "text": "Photo of the capital of France",
    }
    # The text-only cross-encoder cannot read an image: no text ranks last, at 0.
    assert body["results"][-1]["index"] == 2
    assert by_index[2]["relevance_score"] == 0.0
    assert by_index[3]["relevance_score"] > 0.5
    texts = [docs[0], docs[1]["text"], "", docs[3]["text"], "Photo of the capital of France"]
    expected = sum(pair_tokens(QUERY, t) for t in texts) + 3 * 256
    assert body["usage"]["prompt_tokens"] == expected


def test_tei_texts_alias_without_model_uses_the_served_reranker(client: httpx.Client) -> None:
    response = client.post("/rerank", json={"query": QUERY, "texts": DOCS})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == BUNDLED_RERANK_ID
    assert body["results"][0]["index"] == 1


@pytest.mark.parametrize(
    "query",
    [QUERY, {"text": QUERY}, {"content": [{"type": "text", "text": QUERY}]}],
    ids=["string", "text-object", "content-parts"],
)
def test_every_query_shape_scores_the_same(client: httpx.Client, query: Any) -> None:
    body = rerank(client, query=query, documents=DOCS, raw_scores=True)
    reference = rerank(client, query=QUERY, documents=DOCS, raw_scores=True)
    got = {r["index"]: r["relevance_score"] for r in body["results"]}
    want = {r["index"]: r["relevance_score"] for r in reference["results"]}
    for i, score in want.items():
        assert got[i] == pytest.approx(score, abs=0.5)
    assert body["usage"] == reference["usage"]


@pytest.mark.parametrize(("top_n", "count"), [(None, 3), (0, 3), (10, 3), (1, 1), (2, 2)])
def test_top_n_absent_zero_or_too_big_means_all(
    client: httpx.Client, top_n: int | None, count: int
) -> None:
    body: dict[str, Any] = {"query": QUERY, "documents": DOCS}
    if top_n is not None:
        body["top_n"] = top_n
    results = rerank(client, **body)["results"]
    assert len(results) == count
    assert results[0]["index"] == 1


def test_return_documents_false_omits_them(client: httpx.Client) -> None:
    results = rerank(client, query=QUERY, documents=DOCS, return_documents=False)["results"]
    assert all("document" not in r for r in results)
    assert sorted(r["index"] for r in results) == [0, 1, 2]


def test_raw_scores_are_logits_whose_sigmoid_is_the_default_score(client: httpx.Client) -> None:
    raw = {
        r["index"]: r["relevance_score"]
        for r in rerank(client, query=QUERY, documents=DOCS, raw_scores=True)["results"]
    }
    norm = {
        r["index"]: r["relevance_score"]
        for r in rerank(client, query=QUERY, documents=DOCS)["results"]
    }
    assert any(not 0.0 <= s <= 1.0 for s in raw.values())
    for i, logit in raw.items():
        assert 1.0 / (1.0 + np.exp(-logit)) == pytest.approx(norm[i], abs=0.05)


def test_max_tokens_per_doc_and_truncate_prompt_tokens_cut_the_pairs(
    client: httpx.Client,
) -> None:
    long_doc = "Paris is the capital of France. " * 40
    q = len(RERANK_TOK.encode(QUERY, add_special_tokens=False).ids)
    body = rerank(client, query=QUERY, documents=[long_doc], max_tokens_per_doc=20)
    assert body["usage"]["prompt_tokens"] == q + 3 + 20
    body = rerank(client, query=QUERY, documents=[long_doc], truncate_prompt_tokens=64)
    assert body["usage"]["prompt_tokens"] == 64


def test_long_text_document_is_truncated_to_the_context_by_default(
    client: httpx.Client,
) -> None:
    body = rerank(client, query=QUERY, documents=["Paris is lovely. " * 400, "short"])
    assert body["usage"]["prompt_tokens"] == 512 + pair_tokens(QUERY, "short")


def test_image_tokens_take_room_from_the_text_not_the_other_way(client: httpx.Client) -> None:
    doc = {"text": "Paris is lovely. " * 400, "image": png_data_uri(512, 512)}
    body = rerank(client, query=QUERY, documents=[doc])
    assert body["usage"]["prompt_tokens"] == 512


@pytest.mark.parametrize(
    ("width", "height", "tokens"), [(512, 512, 256), (1024, 768, 768), (1296, 1936, 1247)]
)
def test_image_token_arithmetic_of_the_guide(
    client: httpx.Client, width: int, height: int, tokens: int
) -> None:
    doc = {"image": png_data_uri(width, height)}
    body = rerank(client, model=WIDE_RERANK_ID, query=QUERY, documents=[doc])
    q = len(RERANK_TOK.encode(QUERY, add_special_tokens=False).ids)
    assert body["usage"]["prompt_tokens"] == q + 3 + tokens


def test_qwen_budget_holds_26_large_images_but_not_27(client: httpx.Client) -> None:
    img = png_data_uri(1296, 1936)
    fits = {"content": [{"type": "image_url", "image_url": {"url": img}}] * 26}
    over = {"content": [{"type": "image_url", "image_url": {"url": img}}] * 27}
    body = rerank(client, model=WIDE_RERANK_ID, query=QUERY, documents=[fits])
    assert body["usage"]["prompt_tokens"] > 26 * 1247
    response = client.post(
        "/v1/rerank", json={"model": WIDE_RERANK_ID, "query": QUERY, "documents": [fits, over]}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "documents[1]"
    assert "document 1" in error["message"]


def test_image_too_big_for_a_512_context_is_a_400_naming_the_document(
    client: httpx.Client,
) -> None:
    docs = ["fine", {"text": "caption", "image": png_data_uri(1296, 1936)}]
    response = client.post(
        "/v1/rerank", json={"model": BUNDLED_RERANK_ID, "query": QUERY, "documents": docs}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "documents[1]"
