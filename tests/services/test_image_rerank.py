"""Image hits to the rerank peer: page images from the blob store, budgeted, as content parts.

The image-capable peer (IONOS's Qwen3-VL) cannot run here, so it is an httpx.MockTransport
answering in the documented vLLM/IONOS shape (model-api.md) and recording every request.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from core.image_tokens import IMAGE_MAX_PIXELS
from core.types import ChunkPayload, ImageRef, LegScores, ScoredHit
from ingest.blob_store import LocalBlobStore
from ingest.limits import IngestLimits
from ingest.page_images import PdfPages, encode_page
from query import rerank_documents
from reranker import HttpReranker
from services.api.query_images import PageImageSource
from tests.drawn import draw_page, encode, scanned_pdf

pytestmark = pytest.mark.anyio

VL_MODEL = "Qwen/Qwen3-VL-Reranker-8B"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _hit(n: int, text: str, image: ImageRef | None) -> ScoredHit:
    payload = ChunkPayload(
        document_id=f"d{n}", content_hash="0" * 64, chunk_no=0, text=text, image=image
    )
    return ScoredHit(id=f"h{n}", score=1.0 / (n + 1), scores=LegScores(), payload=payload)


class _Peer:
    """Records request bodies; answers 400 to a request with several image documents if told."""

    def __init__(self, *, refuse_mixed: bool = False) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.refuse_mixed = refuse_mixed

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        docs = body["documents"]
        image_docs = sum(isinstance(d, dict) for d in docs)
        if self.refuse_mixed and image_docs > 1:
            error = {"message": "too many images", "type": "BadRequestError", "code": 400}
            return httpx.Response(400, json={"error": error})
        results = [{"index": i, "relevance_score": 0.9 - i / 100} for i in range(len(docs))]
        return httpx.Response(200, json={"id": "rerank-1", "model": body["model"],
                                         "results": results})  # fmt: skip


def _image_parts(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(data URI, OCR text) of each image document in a request body."""
    out = []
    for doc in body["documents"]:
        if isinstance(doc, dict):
            parts = doc["content"]
            uris = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
            texts = [p["text"] for p in parts if p["type"] == "text"]
            out += [(uri, " ".join(texts)) for uri in uris]
    return out


def _pixels(uri: str) -> int:
    header, _, b64 = uri.partition(",")
    assert header.startswith("data:image/")
    assert header.endswith(";base64")
    with Image.open(io.BytesIO(base64.b64decode(b64))) as img:
        return img.width * img.height


@pytest.fixture
def hits(tmp_path: Path) -> list[ScoredHit]:
    blobs = LocalBlobStore(tmp_path / "blobs")
    # Page images as ingest stores them: a 3000x2000 photo-size scan, scaled to the 4 Mpx
    # a stored page may have (still over the rerank budget), and a two-page scanned PDF.
    big = draw_page(["Glacier retreat accelerated."], width=3000).resize((3000, 2000))
    limits = IngestLimits()
    stored = [encode_page(big, limits)]
    with PdfPages(scanned_pdf([draw_page(["Page one."]), draw_page(["Page two."])])) as pdf:
        stored += [encode_page(pdf.render(n, max_pixels=limits.max_image_pixels), limits)
                   for n in range(2)]  # fmt: skip
    refs = [
        ImageRef(blob_id=blobs.put(s.data), page=page, width=s.width, height=s.height, mime=s.mime)
        for s, page in zip(stored, (1, 1, 2), strict=True)
    ]
    out = [_hit(0, "plain text hit", None)]
    out += [_hit(n, f"ocr text {n}", ref) for n, ref in enumerate(refs * 2, start=1)]
    return out


def _source(hits: list[ScoredHit], tmp_path: Path) -> PageImageSource:
    return PageImageSource(LocalBlobStore(tmp_path / "blobs"))


async def test_image_model_gets_data_uri_parts_within_budget_and_cap(
    hits: list[ScoredHit], tmp_path: Path
) -> None:
    peer = _Peer()
    documents = await rerank_documents(hits, _source(hits, tmp_path))
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(peer), base_url="https://hub.test/v1/"
    ) as client:
        reranker = HttpReranker(client, model=VL_MODEL, max_images_per_request=2)
        result = await reranker.rerank("glacier", documents)
    assert all(score is not None for score in result.scores)
    sent = [part for body in peer.bodies for part in _image_parts(body)]
    assert len(sent) == 6  # every image hit carried its page
    assert all(_pixels(uri) <= IMAGE_MAX_PIXELS for uri, _ in sent)
    assert max(_pixels(uri) for uri, _ in sent) > 1_000_000  # the big scan, resized, not lost
    assert {text for _, text in sent} == {f"ocr text {n}" for n in range(1, 7)}
    assert all(len(_image_parts(body)) <= 2 for body in peer.bodies)
    assert len(peer.bodies) >= 3
    assert "plain text hit" in [d for body in peer.bodies for d in body["documents"]]


async def test_a_400_for_mixed_images_falls_back_to_one_image_document_per_request(
    hits: list[ScoredHit], tmp_path: Path
) -> None:
    peer = _Peer(refuse_mixed=True)
    documents = await rerank_documents(hits, _source(hits, tmp_path))
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(peer), base_url="https://hub.test/v1/"
    ) as client:
        result = await HttpReranker(client, model=VL_MODEL).rerank("glacier", documents)
    assert all(score is not None for score in result.scores)
    accepted = [b for b in peer.bodies[1:] if len(_image_parts(b)) <= 1]
    assert len(_image_parts(peer.bodies[0])) == 6  # the first, refused, request
    assert sum(len(_image_parts(b)) for b in accepted) == 6


async def test_text_only_model_gets_the_ocr_text(hits: list[ScoredHit], tmp_path: Path) -> None:
    peer = _Peer()
    documents = await rerank_documents(hits, None)
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(peer), base_url="https://hub.test/v1/"
    ) as client:
        await HttpReranker(client, model="text-reranker").rerank("glacier", documents)
    (body,) = peer.bodies
    assert body["documents"] == ["plain text hit"] + [f"ocr text {n}" for n in range(1, 7)]


async def test_a_missing_blob_is_sent_as_text(tmp_path: Path) -> None:
    ref = ImageRef(blob_id="a" * 64, page=1, width=10, height=10, mime="image/png")
    source = PageImageSource(LocalBlobStore(tmp_path / "blobs"))
    (doc,) = await rerank_documents([_hit(1, "ocr text", ref)], source)
    assert (doc.text, doc.images) == ("ocr text", ())


async def test_a_chunk_indexed_before_page_images_were_stored_goes_as_text(
    tmp_path: Path,
) -> None:
    # Its blob is the upload (here a 2-page TIFF): never decoded at query time.
    blobs = LocalBlobStore(tmp_path / "blobs")
    first, second = draw_page(["Glacier."]), draw_page(["Penguins."])
    key = blobs.put(encode(first, "TIFF", save_all=True, append_images=[second]))
    ref = ImageRef(blob_id=key, page=2, width=first.width, height=first.height)
    (doc,) = await rerank_documents([_hit(1, "ocr text", ref)], PageImageSource(blobs))
    assert (doc.text, doc.images) == ("ocr text", ())
