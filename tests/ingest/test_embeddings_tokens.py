"""The embeddings client's multivector call against the real local hub over HTTP."""

from __future__ import annotations

import asyncio

import openai
import pytest

from core.errors import InvalidInput, UpstreamRejected
from ingest.embeddings_client import AsyncEmbeddingsClient, EmbeddingsClient
from retriever.multivector import unpack
from services.modelhub.registry import BUNDLED_EMBED_ID, BUNDLED_LATE_ID

TEXTS = [
    "Late interaction keeps one vector per token.",
    "MaxSim sums, over the query tokens, the best match in the passage.",
    "short",
    "Token vectors are stored as a multivector in Qdrant.",
    "The dense vector is one per chunk.",
]


def _client(hub_url: str, *, max_batch_items: int = 64) -> EmbeddingsClient:
    sdk = openai.OpenAI(base_url=hub_url, api_key="unused-local-key", timeout=60)
    return EmbeddingsClient(sdk, BUNDLED_LATE_ID, max_batch_items=max_batch_items)


def test_token_vectors_are_packed_per_request_and_in_order(hub_url: str) -> None:
    client = _client(hub_url, max_batch_items=2)
    vectors = client.embed_tokens(TEXTS, dimension=384)
    assert client.requests == 3  # 5 texts, 2 per request
    assert [v.dim for v in vectors] == [384] * 5
    # [CLS] short [SEP]: three tokens; every longer text has more.
    assert vectors[2].count == 3
    assert all(v.count > 3 for i, v in enumerate(vectors) if i != 2)
    one = client.embed_tokens(TEXTS[1:2], dimension=384)[0]
    assert one.count == vectors[1].count
    # Same text alone or in a batch: the same vectors within INT8 and float16 noise.
    assert float((unpack(one) * unpack(vectors[1])).sum(axis=1).mean()) > 0.98
    assert client.prompt_tokens == sum(v.count for v in vectors) + one.count


def test_a_wrong_dimension_is_refused(hub_url: str) -> None:
    with pytest.raises(InvalidInput):
        _client(hub_url).embed_tokens(TEXTS[:1], dimension=128)


def test_a_dense_model_is_not_a_token_encoder(hub_url: str) -> None:
    client = _client(hub_url).for_model(BUNDLED_EMBED_ID)
    with pytest.raises(UpstreamRejected):
        client.embed_tokens(TEXTS[:1], dimension=384)


def test_async_client_returns_the_same_token_vectors(hub_url: str) -> None:
    async def run() -> tuple[int, int]:
        sdk = openai.AsyncOpenAI(base_url=hub_url, api_key="unused-local-key", timeout=60)
        client = AsyncEmbeddingsClient(sdk)
        try:
            vectors, tokens = await client.embed_tokens(
                TEXTS[:1], model=BUNDLED_LATE_ID, dimension=384
            )
        finally:
            await client.close()
        return vectors[0].count, tokens

    count, tokens = asyncio.run(run())
    assert count == tokens == _client(hub_url).embed_tokens(TEXTS[:1])[0].count
