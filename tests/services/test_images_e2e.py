"""Image documents end to end: upload a drawn PNG and a scanned PDF, OCR in a real worker,
query by what they say, fetch the page image, and rerank with the image sent to the hub.

The bundled cross-encoder is declared image-capable here (SIEVE_RERANK_IMAGE_MODELS), so
the real local hub receives content parts: it scores their text part and counts the image
tokens (model-api.md), which is what IONOS's Qwen3-VL would receive.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Iterator

import pytest
from PIL import Image

from core.image_tokens import IMAGE_MAX_PIXELS
from tests.drawn import draw_page, encode, scanned_pdf
from tests.services.stack import KEY_B, Stack, running_stack

pytestmark = pytest.mark.slow

RERANKER = "cross-encoder/ms-marco-MiniLM-L-12-v2"
PNG = encode(
    draw_page(["The lighthouse keeper logged every storm.", "His notebooks span forty-one years."]),
    "PNG",
)
# Pages long enough to be chunks of their own (the chunker merges sections under 16 tokens).
PDF = scanned_pdf(
    [draw_page(["Invoices are due within thirty days.", "Late payments accrue interest."]),
     draw_page(["Bring a torch, a map and spare batteries.", "The cave trail closes at dusk."])]
)  # fmt: skip
NOTE = b"Espresso is coffee brewed by forcing hot water through finely ground beans."


@pytest.fixture(scope="module")
def stack(
    redis_url: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(
        redis_url,
        hub_url,
        tmp_path_factory.mktemp("istack"),
        SIEVE_RERANK_IMAGE_MODELS=RERANKER,
        SIEVE_RERANK_MAX_IMAGES_PER_REQUEST="2",
        # The bundled cross-encoder's pair budget on the hub: the client must fit images
        # into it (a 2000x400 page, 744 tokens, is dropped; the 1000x200 PNG, 186, is sent).
        SIEVE_RERANK_CONTEXT_TOKENS="512",
        SIEVE_WORKER_TASK_TIME_LIMIT_S="120",
        SIEVE_WORKER_VISIBILITY_TIMEOUT_S="150",
    ) as handle:
        with handle.client() as c:
            assert c.post("/v1/collections", json={"name": "scans"}).status_code == 201
            files = [
                ("files", ("keeper.png", PNG, "image/png")),
                ("files", ("scan.pdf", PDF, "application/pdf")),
                ("files", ("note.txt", NOTE, "text/plain")),
            ]
            job = c.post("/v1/collections/scans/documents", files=files).json()
            done = handle.wait_job(c, job["job_id"], timeout_s=240)
            assert done["counts"] == {"indexed": 3}, done
        yield handle


def test_images_and_scans_are_indexed_with_their_pages(stack: Stack) -> None:
    with stack.client() as c:
        pdf = c.get("/v1/collections/scans/documents/scan.pdf").json()
        png = c.get("/v1/collections/scans/documents/keeper.png").json()
    assert (pdf["status"], pdf["pages"]) == ("indexed", 2)
    assert (png["status"], png["pages"]) == ("indexed", 1)


def test_query_finds_the_image_by_what_it_says_and_links_its_page(stack: Stack) -> None:
    stack.plan.bodies.pop("rerank", None)
    with stack.client() as c:
        resp = c.post("/v1/collections/scans/query", json={"query": "lighthouse keeper storms"})
        assert resp.status_code == 200, resp.text
        out = resp.json()
        top = out["results"][0]
        assert top["document_id"] == "keeper.png"
        assert top["image"]["blob_id"] == hashlib.sha256(PNG).hexdigest()
        assert (top["image"]["page"], top["image"]["width"], top["image"]["height"]) == (
            1,
            1000,
            200,
        )
        assert 0.5 <= top["image"]["ocr_min_confidence"] <= top["image"]["ocr_confidence"] <= 1
        served = c.get(top["image"]["url"])
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/png"
        assert served.content == PNG  # the upload itself, kept in the blob store
        scan = c.post("/v1/collections/scans/query", json={"query": "spare batteries torch"})
        hit = scan.json()["results"][0]
        assert (hit["document_id"], hit["page"], hit["image"]["page"]) == ("scan.pdf", 2, 2)
    # The rerank stage ran on the real hub, and the image went as a data: URI content part.
    assert out["rerank"]["status"] == "ok", out["rerank"]
    bodies = [json.loads(b) for b in stack.plan.bodies.get("rerank", [])]
    parts = [d["content"] for b in bodies for d in b["documents"] if isinstance(d, dict)]
    assert parts, bodies
    assert len(parts) >= 1
    for content in parts:
        (image,) = [p for p in content if p["type"] == "image_url"]
        (text,) = [p for p in content if p["type"] == "text"]
        assert text["text"].strip()
        raw = base64.b64decode(image["image_url"]["url"].split(",", 1)[1])
        with Image.open(io.BytesIO(raw)) as img:
            assert img.width * img.height <= IMAGE_MAX_PIXELS
            assert (img.width // 32) * (img.height // 32) <= 512
    for body in bodies:
        assert sum(isinstance(d, dict) for d in body["documents"]) <= 2


def test_page_images_are_served_tenant_checked(stack: Stack) -> None:
    with stack.client() as c:
        page2 = c.get("/v1/collections/scans/documents/scan.pdf/image", params={"page": 2})
        assert page2.status_code == 200
        assert page2.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(page2.content)) as img:
            assert img.width == 2000
        missing = c.get("/v1/collections/scans/documents/scan.pdf/image", params={"page": 3})
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "page_not_found"
        text = c.get("/v1/collections/scans/documents/note.txt/image")
        assert text.status_code == 404
        assert text.json()["error"]["code"] == "no_image"
        # The documents route still answers for the document itself.
        assert c.get("/v1/collections/scans/documents/scan.pdf").json()["id"] == "scan.pdf"
    with stack.client(KEY_B) as other:
        refused = other.get("/v1/collections/scans/documents/keeper.png/image")
        assert refused.status_code == 404
        assert "request_id" in refused.json()["error"]


def test_images_json_and_errors_all_say_nosniff(stack: Stack) -> None:
    with stack.client() as c:
        image = c.get("/v1/collections/scans/documents/keeper.png/image")
        assert (image.status_code, image.headers["content-type"]) == (200, "image/png")
        listed = c.get("/v1/collections/scans/documents")
        assert listed.status_code == 200
        missing = c.get("/v1/collections/scans/documents/note.txt/image")
        assert missing.status_code == 404
        for resp in (image, listed, missing):
            assert resp.headers["x-content-type-options"] == "nosniff", resp.request.url
