"""The API's reranker pool speaks each model's configured dialect (SIEVE_RERANK_MODEL_DIALECTS)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from core.settings import ModelSettings, RerankSettings
from query import RerankerPool
from reranker import RerankDocument
from tests.reranker.peers import DOCUMENTS, EXPECTED_ORDER, QUERY, respond

pytestmark = pytest.mark.anyio

TEI_MODEL = "BAAI/bge-reranker-base"


@pytest.fixture
def anyio_backend() -> str:
    """The API's loop."""
    return "asyncio"


async def test_each_model_gets_the_request_shape_of_its_peer() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def hub(request: httpx.Request) -> httpx.Response:
        # One base URL, two peers behind it: a TEI for one model, an IONOS-style hub else.
        body = json.loads(request.content)
        peer = "ionos" if "model" in body else "tei"
        seen.append((peer, body))
        return respond(peer, body)

    rerank = RerankSettings(model_dialects={TEI_MODEL: "tei"})
    transport = httpx.MockTransport(hub)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test/v1") as client:
        pool = RerankerPool(client, ModelSettings(), rerank)
        docs = [RerankDocument(t) for t in DOCUMENTS]
        tei = await pool.get(TEI_MODEL).rerank(QUERY, docs)
        other = await pool.get("Qwen/Qwen3-VL-Reranker-8B").rerank(QUERY, docs)
    assert tei.order() == other.order() == EXPECTED_ORDER
    assert [peer for peer, _ in seen] == ["tei", "ionos"]
    assert seen[0][1] == {"query": QUERY, "texts": DOCUMENTS, "truncate": True}
    assert pool.get(TEI_MODEL).dialect.name == "tei"
    assert pool.get("Qwen/Qwen3-VL-Reranker-8B").dialect.name == "ionos"
