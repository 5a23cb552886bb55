"""One contract, every rerank dialect: the same cases run against each peer's documented shape.

Each dialect of ``reranker.dialects.DIALECTS`` talks through ``HttpReranker`` to the
MockTransport peer built from that peer's documented request and response (peers.py), which
refuses what the real peer would refuse (unknown fields, document forms it does not take,
more documents than it takes per call). A new dialect joins this suite by its name alone.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from core.settings import RERANK_DIALECTS
from reranker.budget import PairBudget, estimate_tokens
from reranker.dialects import DIALECTS, ImageForm, RerankDialect, dialect_named
from reranker.documents import PreparedDocument, RerankDocument
from reranker.rerank_client import HttpReranker
from tests.reranker.peers import (
    DOCUMENTS,
    EXPECTED_ORDER,
    PEER_OF_DIALECT,
    QUERY,
    document_text,
    peer_handler,
    relevance,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(params=sorted(DIALECTS))
def dialect(request: pytest.FixtureRequest) -> RerankDialect:
    """Each dialect in turn."""
    return DIALECTS[request.param]


@asynccontextmanager
async def speaking(
    dialect: RerankDialect, seen: list[dict[str, Any]], **kwargs: Any
) -> AsyncIterator[HttpReranker]:
    """An HttpReranker in ``dialect`` over the mock of its peer; request bodies go to ``seen``."""
    transport = httpx.MockTransport(peer_handler(PEER_OF_DIALECT[dialect.name], seen))
    async with httpx.AsyncClient(transport=transport, base_url="http://peer.test/v1") as client:
        yield HttpReranker(client, model="some/reranker", dialect=dialect, **kwargs)


def test_every_configurable_dialect_has_an_object_and_a_peer_mock() -> None:
    assert set(DIALECTS) == set(RERANK_DIALECTS) == set(PEER_OF_DIALECT)
    assert all(name == d.name for name, d in DIALECTS.items())


def test_an_unknown_dialect_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown rerank dialect 'tie'; known: cohere, "):
        dialect_named("tie")


async def test_ranks_and_maps_back_through_index(dialect: RerankDialect) -> None:
    seen: list[dict[str, Any]] = []
    async with speaking(dialect, seen) as client:
        result = await client.rerank(QUERY, [RerankDocument(t) for t in DOCUMENTS])
    assert result.order() == EXPECTED_ORDER
    assert result.requests == len(seen) == 1
    assert all(s is not None and 0.0 <= s <= 1.0 for s in result.scores)
    if dialect.name != "vllm":  # probabilities come back as the peer sent them
        assert result.scores == tuple(relevance(QUERY, d) for d in DOCUMENTS)
    else:  # the vLLM mock sends raw logits: squashed, order kept
        assert result.scores[1] == pytest.approx(1 / (1 + math.exp(-4.0)))


async def test_a_peer_that_cuts_to_top_n_is_asked_for_every_document(
    dialect: RerankDialect,
) -> None:
    seen: list[dict[str, Any]] = []
    async with speaking(dialect, seen) as client:
        await client.rerank(QUERY, [RerankDocument(t) for t in DOCUMENTS])
    expected = None if dialect.scores_all_documents else len(DOCUMENTS)
    assert seen[0].get("top_n") == expected


async def test_large_candidate_sets_stay_within_the_peer_cap(dialect: RerankDialect) -> None:
    # 70 candidates: over Sieve's default 64 per request and over TEI's 32.
    texts = [f"{DOCUMENTS[i % 4]} {i}" for i in range(70)]
    seen: list[dict[str, Any]] = []
    async with speaking(dialect, seen, max_documents_per_request=64) as client:
        result = await client.rerank(QUERY, [RerankDocument(t) for t in texts])
    cap = dialect.documents_per_request(64)
    sizes = [len(body.get("documents", body.get("texts", []))) for body in seen]
    assert sum(sizes) == 70
    assert max(sizes) <= cap
    assert result.requests == len(seen) == math.ceil(70 / cap)
    assert None not in result.scores


async def test_image_documents_go_as_the_peer_takes_them(
    dialect: RerankDialect, make_image: Callable[..., bytes]
) -> None:
    two_images = RerankDocument("apple pie recipe", images=(make_image(64, 64), make_image(96, 64)))
    seen: list[dict[str, Any]] = []
    async with speaking(dialect, seen) as client:
        result = await client.rerank(QUERY, [RerankDocument("car engine"), two_images])
    assert result.order() == [1, 0]  # the peer took the request and scored the text
    body = seen[0]
    sent = (body.get("documents") or body["texts"])[1]
    assert document_text(sent) == "apple pie recipe"
    if dialect.images is ImageForm.CONTENT_PARTS:
        kinds = [part["type"] for part in sent["content"]]
        assert kinds == ["image_url", "image_url", "text"]
        on_wire = 2
    elif dialect.images is ImageForm.JINA_OBJECT:
        assert sent["image"].startswith("data:image/")
        on_wire = 1
    else:
        assert sent == "apple pie recipe"
        on_wire = 0
    assert on_wire == (
        min(2, dialect.max_images_per_document or 2) if dialect.supports_images else 0
    )
    assert result.images_dropped == 2 - on_wire  # never silent: what did not go is counted


def test_requests_are_built_from_the_same_documents_by_every_dialect(
    dialect: RerankDialect,
) -> None:
    docs = [PreparedDocument("first"), PreparedDocument("second")]
    body = dialect.build_request("m", "q", docs, top_n=2)
    texts = body.get("documents", body.get("texts"))
    assert texts == ["first", "second"]
    assert body["query"] == "q"
    assert body.get("model") in ("m", None)
    assert dialect.parse_response([{"index": 1, "score": 0.9}], 2)[0].index == 1


async def test_documents_stay_within_the_peer_token_cap(dialect: RerankDialect) -> None:
    budget = PairBudget(max_document_tokens=None)  # no cap of Sieve's own: the peer's shows
    long_text = "apple pie recipe " + "filling " * 15_000  # ~40,000 estimated tokens
    seen: list[dict[str, Any]] = []
    async with speaking(dialect, seen, budget=budget) as client:
        result = await client.rerank(QUERY, [RerankDocument(long_text)])
    sent = document_text((seen[0].get("documents") or seen[0]["texts"])[0])
    room = budget.available - estimate_tokens(QUERY)  # the pair's context, else
    limit = min(dialect.max_document_tokens or room, room)
    assert limit * 0.99 < estimate_tokens(sent) <= limit
    assert result.texts_truncated == 1
