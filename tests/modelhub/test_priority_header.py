"""Bulk or interactive, end to end: Sieve's sync embeddings client marks its requests
bulk (the ingest worker's and re-indexer's), the hub's guard reads the mark for the
batcher, and the API's collection-create probe goes as interactive."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import AnyHttpUrl

from core.settings import IngestSettings, ModelSettings
from services.modelhub.batcher import bulk_request
from services.modelhub.guard import HubGuard, KeyRing
from services.wiring import build_embeddings
from tests.servers import serve_in_thread


def test_the_worker_client_is_bulk_the_api_probe_is_not_and_the_guard_tells_the_batcher() -> None:
    seen: list[bool] = []
    inner = FastAPI()

    @inner.post("/v1/embeddings")
    async def embeddings() -> dict[str, object]:
        seen.append(bulk_request.get())  # what the batcher would read for this request
        return {
            "object": "list",
            "model": "m",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.6, 0.8]}],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }

    app = HubGuard(inner, keys=KeyRing(()), max_body_bytes=1 << 20)
    with serve_in_thread(app, lifespan="off") as url:
        models = ModelSettings(base_url=AnyHttpUrl(f"{url}/v1"), embedding_model="m")
        for bulk in (True, False, True):
            vectors = build_embeddings(models, IngestSettings(), bulk=bulk).embed(["text"])
            assert [round(x, 6) for x in vectors[0]] == [0.6, 0.8]
    assert seen == [True, False, True]
    assert bulk_request.get() is False  # the mark stays with its request
