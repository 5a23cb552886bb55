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
import time
from collections.abc import Iterator
from typing import Any

import pypdfium2
import pytest
import redis
from PIL import Image, ImageFile

from core.image_tokens import IMAGE_MAX_PIXELS
from tests.drawn import draw_page, encode, scanned_pdf, tiff_pages
from tests.ingest.samples import stroked_pdf
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


# Hostile uploads, each small on disk (issue 19): what ingestion refuses must cost a GET
# nothing. Before, every GET decoded or rendered the upload again: the 18 KB TIFF took
# 700 MiB, page 2 of the tall one a 500, the 3 KB PDF 51 s of CPU per GET.
HOSTILE = {
    "big.tif": "too_large",
    "tall.tif": "too_large",
    "lines.pdf": "no_text_layer",
    "many.tif": "too_many_pages",
}


def _hostile_files() -> dict[str, bytes]:
    """Built when the stack runs, not at import (the 100,000-page TIFF takes 2 s)."""
    return {
        "big.tif": tiff_pages([(12000, 12000)]),  # 18 KB; 144 Mpx decoded
        "tall.tif": tiff_pages([draw_page(["Glacier retreat accelerated."]), (16000, 16000)]),
        "lines.pdf": stroked_pdf(60_000),  # 3 KB
        "many.tif": tiff_pages([(1, 1)] * 100_000),  # 11 MB
    }


LEGACY = encode(draw_page(["Meltwater lakes formed along the margin."]), "PNG")


@pytest.fixture(scope="module")
def hostile(stack: Stack) -> dict[str, Any]:
    with stack.client() as c:
        assert c.post("/v1/collections", json={"name": "hostile"}).status_code == 201
        files = [
            ("files", (n, data, "application/octet-stream")) for n, data in _hostile_files().items()
        ]
        files.append(("files", ("legacy.png", LEGACY, "image/png")))
        job = c.post("/v1/collections/hostile/documents", files=files)
        assert job.status_code == 202, job.text
        done = stack.wait_job(c, job.json()["job_id"], timeout_s=240)
    assert done["counts"] == {"failed": len(HOSTILE), "indexed": 1}, done
    return dict(done)


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail any image decode or PDF open in this process (the API serves from a thread here;
    the worker, which derived the images, is another process)."""
    calls: list[str] = []

    def refuse(what: str) -> Any:
        def call(*_: object, **__: object) -> None:
            calls.append(what)
            raise RuntimeError(f"{what} on the request path")

        return call

    monkeypatch.setattr(Image, "open", refuse("Image.open"))
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse("ImageFile.load"))
    monkeypatch.setattr(pypdfium2, "PdfDocument", refuse("PdfDocument"))
    yield calls
    assert calls == []


def test_refused_documents_have_no_image_and_a_get_decodes_nothing(
    stack: Stack, hostile: dict[str, Any], no_decoding: list[str]
) -> None:
    errors = hostile["errors"]
    assert {name: errors[name]["reason"] for name in HOSTILE} == HOSTILE
    with stack.client() as c:
        for name, page in [*((n, 1) for n in HOSTILE), ("tall.tif", 2), ("many.tif", 99_999)]:
            got = c.get(f"/v1/collections/hostile/documents/{name}/image", params={"page": page})
            assert got.status_code == 404, (name, page, got.text)
            body = got.json()["error"]
            assert body["code"] == "no_image", body
            assert "failed" in body["message"]
        unknown = c.get("/v1/collections/hostile/documents/nothing.png/image")
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (
            404,
            "document_not_found",
        )
    assert no_decoding == []


def _stored(stack: Stack, key: str) -> bytes:
    """A blob as the worker wrote it (content-addressed: the key is the bytes' sha256)."""
    return (stack.root / "blobs" / key[:2] / key).read_bytes()


def test_indexed_page_images_stream_the_bytes_ingest_stored(
    stack: Stack, no_decoding: list[str]
) -> None:
    with stack.client() as c:
        seen = {}
        for doc, page in [("keeper.png", 1), ("scan.pdf", 1), ("scan.pdf", 2)]:
            url = f"/v1/collections/scans/documents/{doc}/image"
            got = c.get(url, params={"page": page})
            assert got.status_code == 200, got.text
            etag = got.headers["etag"]
            key = etag.strip('"')
            assert got.content == _stored(stack, key)
            assert hashlib.sha256(got.content).hexdigest() == key
            assert got.headers["x-content-type-options"] == "nosniff"
            assert got.headers["cache-control"] == "private, max-age=3600"
            again = c.get(url, params={"page": page}, headers={"If-None-Match": etag})
            assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
            other = c.get(url, params={"page": page}, headers={"If-None-Match": '"0000"'})
            assert other.status_code == 200
            seen[doc, page] = key
        # A single-page PNG is its own page image; the scan's pages are stored renders.
        assert seen["keeper.png", 1] == hashlib.sha256(PNG).hexdigest()
        assert len({seen["scan.pdf", 1], seen["scan.pdf", 2]}) == 2
    assert no_decoding == []


def test_query_hits_name_the_stored_page_the_route_serves(stack: Stack) -> None:
    # (Not under no_decoding: the rerank stage resizes the stored page to the model's size.)
    with stack.client() as c:
        hit = c.post("/v1/collections/scans/query", json={"query": "spare batteries torch"})
        top = hit.json()["results"][0]
        served = c.get(top["image"]["url"])
    assert (top["document_id"], top["image"]["page"]) == ("scan.pdf", 2)
    # What the reranker reads (ImageRef.blob_id) is what the route streams.
    assert served.headers["etag"] == f'"{top["image"]["blob_id"]}"'
    assert hashlib.sha256(served.content).hexdigest() == top["image"]["blob_id"]


def test_a_document_indexed_before_page_images_were_stored_says_to_upload_it_again(
    stack: Stack, hostile: dict[str, Any], redis_url: str
) -> None:
    url = "/v1/collections/hostile/documents/legacy.png/image"
    with stack.client() as c:
        assert c.get(url).status_code == 200
        # What a record written by the old worker looks like: no page_images field at all.
        with redis.Redis.from_url(redis_url) as raw:
            raw.hdel("sieve:doc:team-a:hostile:legacy.png", "page_images")
        got = c.get(url)
        assert got.status_code == 404
        error = got.json()["error"]
        assert error["code"] == "image_not_derived"
        assert "upload it again" in error["message"]
        # The remedy it names: the new version's pages are derived by the worker.
        fresh = encode(draw_page(["Meltwater lakes formed along the margin, again."]), "PNG")
        job = c.post(
            "/v1/collections/hostile/documents",
            files=[("files", ("legacy.png", fresh, "image/png"))],
        )
        assert stack.wait_job(c, job.json()["job_id"])["counts"] == {"indexed": 1}
        again = c.get(url)
        assert (again.status_code, again.content) == (200, fresh)


def test_an_expired_document_has_no_image_before_the_sweep(stack: Stack, redis_url: str) -> None:
    # Queries drop a document the moment it expires; the image route served it until the
    # retention sweep deleted it.
    png = encode(draw_page(["The tide tables expire at the end of the season."]), "PNG")
    url = "/v1/collections/expiring/documents/tides.png/image"
    with stack.client() as c:
        assert c.post("/v1/collections", json={"name": "expiring"}).status_code == 201
        job = c.post(
            "/v1/collections/expiring/documents",
            params={"ttl_s": 3600},
            files=[("files", ("tides.png", png, "image/png"))],
        )
        assert stack.wait_job(c, job.json()["job_id"])["counts"] == {"indexed": 1}
        assert c.get(url).status_code == 200
        with redis.Redis.from_url(redis_url) as raw:
            key = "sieve:doc:team-a:expiring:tides.png"
            assert raw.hexists(key, "expires_at")
            # The record's end moved into the past (the points' payload keeps the old one,
            # so this checks the route, not the queries, which tests/indexing cover).
            raw.hset(key, "expires_at", json.dumps(time.time() - 1))
        got = c.get(url)
        assert got.status_code == 404, got.text
        assert got.json()["error"]["code"] == "document_expired"


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
