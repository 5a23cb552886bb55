"""Single vectors travel as base64 float32: the same values as the float answer, and a
hub that answers floats anyway (or broken base64) is handled."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import httpx2
import numpy as np
import openai
import pytest

from core.errors import UpstreamRejected
from ingest.embeddings_client import AsyncEmbeddingsClient, EmbeddingsClient
from services.modelhub.registry import BUNDLED_EMBED_ID

TEXTS = ["vitamin D and bone density", "how cells repair DNA", "x"]


def _hub_floats(hub_url: str) -> list[list[float]]:
    """The hub's own float answer, asked for explicitly over plain HTTP."""
    body = {"model": BUNDLED_EMBED_ID, "input": TEXTS, "encoding_format": "float"}
    resp = httpx.post(f"{hub_url}/embeddings", json=body, timeout=60)
    resp.raise_for_status()
    return [item["embedding"] for item in sorted(resp.json()["data"], key=lambda d: d["index"])]


def test_sync_and_async_clients_get_the_floats_bit_for_bit(hub_url: str) -> None:
    expected = _hub_floats(hub_url)
    sdk = openai.OpenAI(base_url=hub_url, api_key="unused-local-key", timeout=60)
    assert EmbeddingsClient(sdk, BUNDLED_EMBED_ID).embed(TEXTS, dimension=384) == expected

    async def run() -> list[list[float]]:
        asdk = openai.AsyncOpenAI(base_url=hub_url, api_key="unused-local-key", timeout=60)
        client = AsyncEmbeddingsClient(asdk)
        try:
            vectors, tokens = await client.embed(TEXTS, model=BUNDLED_EMBED_ID, dimension=384)
        finally:
            await client.close()
        assert tokens > 0
        return vectors

    assert asyncio.run(run()) == expected


def _peer(answer: object) -> tuple[EmbeddingsClient, list[dict[str, object]]]:
    """A client of a peer (documented OpenAI shape) answering ``answer`` as every embedding."""
    seen: list[dict[str, object]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append(body)
        data = [
            {"object": "embedding", "index": i, "embedding": answer}
            for i in range(len(body["input"]))
        ]
        usage = {"prompt_tokens": 3, "total_tokens": 3}
        return httpx2.Response(
            200, json={"object": "list", "data": data, "model": "m", "usage": usage}
        )

    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    sdk = openai.OpenAI(base_url="http://peer.test/v1", api_key="k", http_client=http)
    return EmbeddingsClient(sdk, "m"), seen


def test_a_peer_that_answers_floats_anyway_still_works() -> None:
    client, seen = _peer([0.25, -1.5, 3.0])
    assert client.embed(["a", "b"]) == [[0.25, -1.5, 3.0], [0.25, -1.5, 3.0]]
    assert seen[0]["encoding_format"] == "base64"


def test_a_base64_answer_decodes_to_little_endian_float32() -> None:
    values = np.array([0.1, -2.0, 1e-8], dtype="<f4")
    client, _ = _peer(base64.b64encode(values.tobytes()).decode())
    assert client.embed(["a"]) == [values.astype(np.float64).tolist()]


@pytest.mark.parametrize("answer", ["not base64 at all!", base64.b64encode(b"12345").decode()])
def test_a_broken_base64_answer_is_a_bad_upstream_response(answer: str) -> None:
    client, _ = _peer(answer)
    with pytest.raises(UpstreamRejected) as info:
        client.embed(["a"])
    assert info.value.code == "bad_upstream_response"
