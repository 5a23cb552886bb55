"""The wire format: each dialect's strict request, and every response and error shape we accept.

What every dialect must do alike is the contract suite (test_dialect_contract.py); here are
the exact bodies per peer.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from reranker.budget import PairBudget
from reranker.dialects import (
    DIALECTS,
    MalformedResponse,
    PeerError,
    RerankScore,
    normalize_scores,
    parse_error_body,
    parse_rerank_response,
)
from reranker.documents import PreparedDocument

_PNG = "data:image/png;base64,iVBORw0KGgo="
IONOS = DIALECTS["ionos"]


def test_request_is_the_minimal_ionos_body() -> None:
    docs = [PreparedDocument("first"), PreparedDocument("second")]
    body = IONOS.build_request("Qwen/Qwen3-VL-Reranker-8B", "q", docs, top_n=2)
    assert body == {
        "model": "Qwen/Qwen3-VL-Reranker-8B",
        "query": "q",
        "documents": ["first", "second"],
        "top_n": 2,
    }


def test_request_never_carries_undocumented_fields() -> None:
    body = IONOS.build_request("m", "q", [PreparedDocument("a")])
    assert set(body) == {"model", "query", "documents"}
    for field in ("return_documents", "max_tokens_per_doc", "instruction", "raw_scores"):
        assert field not in body


def test_image_documents_use_the_content_part_form_with_data_uris() -> None:
    docs = [
        PreparedDocument("caption of the page", image_uris=(_PNG,), image_tokens=256),
        PreparedDocument("", image_uris=(_PNG, _PNG), image_tokens=512),
    ]
    body = IONOS.build_request("m", "q", docs)
    assert body == DIALECTS["vllm"].build_request("m", "q", docs)
    assert body["documents"] == [
        {
            "content": [
                {"type": "image_url", "image_url": {"url": _PNG}},
                {"type": "text", "text": "caption of the page"},
            ]
        },
        {
            "content": [
                {"type": "image_url", "image_url": {"url": _PNG}},
                {"type": "image_url", "image_url": {"url": _PNG}},
            ]
        },
    ]


def test_tei_request_uses_texts_and_asks_to_truncate() -> None:
    docs = [PreparedDocument("a"), PreparedDocument("b", image_uris=(_PNG,))]
    body = DIALECTS["tei"].build_request("m", "q", docs, top_n=2)
    assert body == {"query": "q", "texts": ["a", "b"], "truncate": True}


def test_jina_image_documents_are_text_and_image_objects() -> None:
    docs = [
        PreparedDocument("caption", image_uris=(_PNG,)),
        PreparedDocument("", image_uris=(_PNG,)),
        PreparedDocument("plain"),
    ]
    body = DIALECTS["jina"].build_request("jina-reranker-m0", "q", docs, top_n=3)
    assert body == {
        "model": "jina-reranker-m0",
        "query": "q",
        "documents": [{"image": _PNG, "text": "caption"}, {"image": _PNG}, "plain"],
        "top_n": 3,
    }


@pytest.mark.parametrize("name", ["cohere", "infinity"])
def test_text_only_peers_get_the_text_of_image_documents(name: str) -> None:
    docs = [PreparedDocument("caption", image_uris=(_PNG,)), PreparedDocument("plain")]
    body = DIALECTS[name].build_request("m", "q", docs, top_n=2)
    assert body == {"model": "m", "query": "q", "documents": ["caption", "plain"], "top_n": 2}


def test_the_document_token_cap_is_the_smaller_of_sieves_and_the_peers() -> None:
    cohere = DIALECTS["cohere"]  # cuts each document at max_tokens_per_doc = 4,096
    assert cohere.budget(PairBudget(max_document_tokens=None)).max_document_tokens == 4096
    assert cohere.budget(PairBudget(max_document_tokens=8192)).max_document_tokens == 4096
    assert cohere.budget(PairBudget(max_document_tokens=512)).max_document_tokens == 512
    assert DIALECTS["ionos"].budget(PairBudget()) == PairBudget()


def test_documents_per_request_stay_within_the_peer_cap() -> None:
    assert DIALECTS["tei"].documents_per_request(64) == 32  # TEI's --max-client-batch-size
    assert DIALECTS["tei"].documents_per_request(8) == 8
    assert DIALECTS["ionos"].documents_per_request(500) == 500  # none documented


# Response shapes, as documented (model-api.md) for each peer.
_RESPONSES: dict[str, Any] = {
    "ionos_vllm": {
        "id": "rerank-1",
        "model": "m",
        "results": [
            {"index": 1, "relevance_score": 0.9613, "document": {"text": "b"}},
            {"index": 0, "relevance_score": 0.0204, "document": {"text": "a"}},
        ],
        "usage": {"prompt_tokens": 10, "total_tokens": 10},
    },
    "cohere_no_document": {
        "id": "x",
        "results": [
            {"index": 1, "relevance_score": 0.9613},
            {"index": 0, "relevance_score": 0.0204},
        ],
        "meta": {"api_version": {"version": "2"}},
    },
    "jina_document_string": {
        "model": "m",
        "results": [
            {"index": 0, "relevance_score": 0.0204, "document": "a"},
            {"index": 1, "relevance_score": 0.9613, "document": "b"},
        ],
        "usage": {"total_tokens": 10},
    },
    "infinity_data": {
        "object": "rerank",
        "data": [{"index": 1, "score": 0.9613}, {"index": 0, "score": 0.0204}],
    },
    "tei_array": [{"index": 1, "score": 0.9613}, {"index": 0, "score": 0.0204}],
    "image_multi_modal": {
        "results": [
            {"index": 1, "relevance_score": 0.9613, "document": {"multi_modal": [{"type": "x"}]}},
            {"index": 0, "relevance_score": 0.0204},
        ]
    },
}


@pytest.mark.parametrize("peer", sorted(_RESPONSES))
def test_every_peer_response_maps_back_through_index(peer: str) -> None:
    scores = {s.index: s.score for s in parse_rerank_response(_RESPONSES[peer], 2)}
    assert scores == {0: 0.0204, 1: 0.9613}


def test_a_peer_may_return_fewer_results_than_documents() -> None:
    body = {"results": [{"index": 2, "relevance_score": 0.5}]}
    assert parse_rerank_response(body, 3) == [RerankScore(2, 0.5)]


def test_logits_are_squashed_by_a_sigmoid_when_any_is_outside_unit_range() -> None:
    body = [{"index": 0, "score": 4.0}, {"index": 1, "score": 0.5}, {"index": 2, "score": -3.0}]
    scores = {s.index: s.score for s in parse_rerank_response(body, 3)}
    # All or none: 0.5 was a logit too, so it is squashed as well.
    assert scores[0] == pytest.approx(1 / (1 + math.exp(-4.0)))
    assert scores[1] == pytest.approx(1 / (1 + math.exp(-0.5)))
    assert scores[2] == pytest.approx(1 / (1 + math.exp(3.0)))
    assert scores[0] > scores[1] > scores[2]


def test_scores_inside_unit_range_are_left_alone() -> None:
    scores = [RerankScore(0, 0.0), RerankScore(1, 1.0), RerankScore(2, 0.3)]
    assert normalize_scores(scores) == scores


def test_sigmoid_survives_huge_logits() -> None:
    squashed = normalize_scores([RerankScore(0, 1000.0), RerankScore(1, -1000.0)])
    assert squashed[0].score == pytest.approx(1.0)
    assert squashed[1].score == pytest.approx(0.0)


def test_raw_scores_on_request() -> None:
    body = [{"index": 0, "score": 4.0}]
    assert parse_rerank_response(body, 1, normalize=False) == [RerankScore(0, 4.0)]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"object": "list"}, "no results list"),
        ({"results": [{"index": 5, "relevance_score": 0.1}]}, "outside"),
        ({"results": [{"index": -1, "relevance_score": 0.1}]}, "outside"),
        ({"results": [{"relevance_score": 0.1}]}, "integer 'index'"),
        ({"results": [{"index": True, "relevance_score": 0.1}]}, "integer 'index'"),
        ({"results": [{"index": 0}]}, "no numeric"),
        ({"results": [{"index": 0, "score": "high"}]}, "no numeric"),
        ({"results": [{"index": 0, "score": float("nan")}]}, "not finite"),
        ({"results": [{"index": 0, "score": 0.1}, {"index": 0, "score": 0.2}]}, "twice"),
        ({"results": ["a"]}, "not an object"),
        ("<html>", "no results list"),
    ],
)
def test_malformed_responses_are_refused(body: Any, match: str) -> None:
    with pytest.raises(MalformedResponse, match=match):
        parse_rerank_response(body, 2)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (  # ours and OpenAI's
            {
                "error": {
                    "message": "unknown model",
                    "type": "not_found",
                    "param": "model",
                    "code": 404,
                }
            },
            PeerError("unknown model", "not_found", "404"),
        ),
        (  # TEI
            {"error": "Input validation error", "error_type": "Validation"},
            PeerError("Input validation error", "Validation"),
        ),
        (  # older vLLM
            {"object": "error", "message": "too long", "type": "BadRequestError", "code": 400},
            PeerError("too long", "BadRequestError", "400"),
        ),
        ({"message": "invalid api token"}, PeerError("invalid api token")),  # Cohere
        (  # IONOS
            {
                "httpStatus": 401,
                "messages": [{"errorCode": "paas-auth-1", "message": "Unauthorized"}],
            },
            PeerError("Unauthorized", None, "paas-auth-1"),
        ),
        ({"detail": "Not Found"}, PeerError("Not Found")),  # FastAPI default
        ("upstream connect error", PeerError("upstream connect error")),  # a proxy's text
    ],
)
def test_every_error_dialect_is_read(body: Any, expected: PeerError) -> None:
    assert parse_error_body(body) == expected


@pytest.mark.parametrize("body", [None, {}, [], "", {"error": {}}, {"messages": []}, 42])
def test_unknown_error_bodies_give_none(body: Any) -> None:
    assert parse_error_body(body) is None
