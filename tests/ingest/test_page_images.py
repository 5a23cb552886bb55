"""Page images derived at ingest: counted under the limits and the clock, stored within caps.

The hostile files are built here, field by field, and are small on disk; what they would
cost to decode or count is the point.
"""

from __future__ import annotations

import hashlib
import io
import random
import time
from pathlib import Path

import pytest
from PIL import Image

from ingest.blob_store import LocalBlobStore
from ingest.documents import ExtractedDocument, FailureReason, ParseOutcome
from ingest.limits import IngestLimits
from ingest.ocr import RapidOcrEngine
from ingest.page_images import encode_page, upload_as_page
from ingest.page_store import PageImageManifest
from ingest.parsers import parse_document
from tests.drawn import draw_page, encode, tiff_pages


@pytest.fixture(scope="module")
def ocr() -> RapidOcrEngine:
    # Loaded on the first page it reads: the refused files below never get that far.
    return RapidOcrEngine()


def _reason(outcome: ParseOutcome) -> FailureReason:
    assert not isinstance(outcome, ExtractedDocument), outcome.text
    return outcome.reason


def test_a_tiff_of_100k_tiny_pages_is_refused_without_counting_them_all(
    ocr: RapidOcrEngine,
) -> None:
    many = tiff_pages([(1, 1)] * 100_000)
    assert len(many) < 12_000_000
    started = time.thread_time()
    outcome = parse_document(many, "many.tif", IngestLimits(), ocr=ocr)
    spent = time.thread_time() - started
    assert _reason(outcome) is FailureReason.TOO_MANY_PAGES
    assert "over 200 pages" in outcome.message  # type: ignore[union-attr]
    # Pillow's own count walked all 100,000 directories: 52 s of CPU (O(n^2)).
    assert spent < 3.0, spent


def test_frame_counting_runs_under_the_parse_clock(ocr: RapidOcrEngine) -> None:
    # Limits high enough to count every page: the clock is what stops it.
    many = tiff_pages([(1, 1)] * 40_000)
    limits = IngestLimits(
        max_ocr_pages=1_000_000, max_pages=1_000_000, max_parse_seconds=0.3, ocr_time_limit_s=2
    )
    started = time.thread_time()
    outcome = parse_document(many, "many.tif", limits, ocr=ocr)
    assert _reason(outcome) is FailureReason.TOO_EXPENSIVE
    assert time.thread_time() - started < 2.0


def test_a_tiff_page_over_the_pixel_limit_fails_the_document_before_decoding(
    ocr: RapidOcrEngine, tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path)
    big = tiff_pages([(12000, 12000)])
    assert len(big) < 20_000
    assert _reason(parse_document(big, "big.tif", IngestLimits(), ocr=ocr, page_images=blobs)) is (
        FailureReason.TOO_LARGE
    )
    assert not any(tmp_path.rglob("*/*"))  # nothing stored for it


def test_stored_pages_stay_within_the_pixel_and_byte_caps() -> None:
    rng = random.Random(7)
    # 6 Mpx of noise: the worst case for both PNG and JPEG.
    noise = Image.frombytes("RGB", (3000, 2000), rng.randbytes(3000 * 2000 * 3))
    limits = IngestLimits(max_page_image_pixels=1_000_000, max_page_image_bytes=256 * 1024)
    stored = encode_page(noise, limits)
    assert len(stored.data) <= 256 * 1024
    assert stored.width * stored.height <= 1_000_000
    with Image.open(io.BytesIO(stored.data)) as img:
        assert img.size == (stored.width, stored.height)
        assert img.format == stored.mime.removeprefix("image/").upper()
    # A page of text fits as PNG, at its own size.
    page = draw_page(["Invoices are due within thirty days."])
    plain = encode_page(page, IngestLimits())
    assert (plain.mime, plain.width, plain.height) == ("image/png", page.width, page.height)


def test_an_upload_is_its_own_page_image_only_when_it_can_be_shown_as_it_is() -> None:
    limits = IngestLimits()
    page = draw_page(["Glacier retreat accelerated."])
    png = encode(page, "PNG")
    with Image.open(io.BytesIO(png)) as img:
        as_is = upload_as_page(png, img, limits)
    assert as_is is not None
    assert (as_is.data, as_is.mime) == (png, "image/png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: OCR read it upright, a raw copy would not be
    rotated = encode(page, "JPEG", exif=exif.tobytes())
    with Image.open(io.BytesIO(rotated)) as img:
        assert upload_as_page(rotated, img, limits) is None
    with Image.open(io.BytesIO(png)) as img:
        assert upload_as_page(png, img, IngestLimits(max_page_image_pixels=10_000)) is None


def test_each_ocr_page_is_stored_once_and_listed_by_the_manifest(tmp_path: Path) -> None:
    from tests.drawn import scanned_pdf  # noqa: PLC0415

    ocr = RapidOcrEngine()
    blobs = LocalBlobStore(tmp_path)
    first, second = draw_page(["Glacier retreat accelerated."]), draw_page(["Penguins huddle."])
    tiff = tiff_pages([first, second])
    doc = parse_document(tiff, "two.tif", IngestLimits(), ocr=ocr, page_images=blobs)
    assert isinstance(doc, ExtractedDocument), doc
    stored = [image.stored for image in doc.images]
    assert [s.mime if s else None for s in stored] == ["image/png", "image/png"]
    for image, s in zip(doc.images, stored, strict=True):
        assert s is not None
        data = blobs.get(s.key)
        assert hashlib.sha256(data).hexdigest() == s.key
        assert (s.size, s.width, s.height) == (len(data), image.width, image.height)
    manifest = PageImageManifest(
        source=doc.content_sha256, pages={i.page: i.stored for i in doc.images if i.stored}
    )
    assert PageImageManifest.model_validate_json(manifest.encode()) == manifest
    scan = scanned_pdf([first])
    pdf = parse_document(scan, "s.pdf", IngestLimits(), ocr=ocr, page_images=blobs)
    assert isinstance(pdf, ExtractedDocument), pdf
    (page,) = pdf.images
    assert page.stored is not None
    assert page.stored.mime == "image/png"
