"""OCR with the real PP-OCRv4 models: images the tests draw, and PDFs built from them."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import pytest
from PIL import Image

from core.ids import content_sha256
from ingest.blob_store import LocalBlobStore
from ingest.documents import (
    DocumentKind,
    ExtractedDocument,
    FailureReason,
    ParseError,
    ParseOutcome,
)
from ingest.limits import IngestLimits
from ingest.ocr import (
    OCR_MODEL_PINS,
    OcrIntegrityError,
    RapidOcrEngine,
    RecognizedLine,
    reading_order,
)
from ingest.parsers import parse_document
from ingest.parsers.assembly import TextAssembler
from ingest.parsers.images import OcrPass
from ingest.pipeline import image_ref
from tests.drawn import (
    HELD_OUT_PAGES,
    char_error_rate,
    draw_page,
    encode,
    mixed_pdf,
    scanned_pdf,
)
from tests.ingest.samples import make_pdf

# Measured with bench/ocr.py on HELD_OUT_PAGES at 28-px text, 60 px apart: mean CER 0.000
# (0.046 at 20 px, 0.18 at 16 px). The bound allows one dropped space or so per page.
_CER_BOUND = 0.02


@pytest.fixture(scope="module")
def ocr() -> RapidOcrEngine:
    engine = RapidOcrEngine()
    engine.load()
    return engine


def _doc(outcome: ParseOutcome) -> ExtractedDocument:
    assert isinstance(outcome, ExtractedDocument), outcome
    return outcome


def _reason(outcome: ParseOutcome) -> FailureReason:
    assert not isinstance(outcome, ExtractedDocument), outcome.text
    return outcome.reason


def test_held_out_pages_are_read_below_the_measured_error_rate(
    ocr: RapidOcrEngine, limits: IngestLimits
) -> None:
    rates = []
    for lines in HELD_OUT_PAGES:
        doc = _doc(parse_document(encode(draw_page(lines), "PNG"), "p.png", limits, ocr=ocr))
        rates.append(char_error_rate("\n".join(lines), doc.text))
    assert sum(rates) / len(rates) <= _CER_BOUND, rates
    # A wrong reader (or none) is nowhere near: the score itself can fail.
    assert char_error_rate("\n".join(HELD_OUT_PAGES[0]), "\n".join(HELD_OUT_PAGES[1])) > 0.5


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("PNG", {}), ("JPEG", {"quality": 90}), ("WEBP", {"quality": 90}), ("GIF", {})],
)
def test_each_image_format_becomes_a_document(
    ocr: RapidOcrEngine, limits: IngestLimits, fmt: str, params: dict[str, object]
) -> None:
    lines = ("Lighthouse keepers logged storms.", "Notebooks span decades.")
    data = encode(draw_page(lines), fmt, **params)
    doc = _doc(parse_document(data, f"scan.{fmt.lower()}", limits, ocr=ocr))
    assert doc.kind is DocumentKind.IMAGE
    assert "Lighthouse" in doc.text
    assert "Notebooks" in doc.text
    assert doc.text.index("Lighthouse") < doc.text.index("Notebooks")  # reading order
    (image,) = doc.images
    assert (image.page, image.width, image.height) == (1, 1000, 200)
    assert next(doc.text[ln.char_start : ln.char_end] for ln in image.lines).startswith("Light")
    assert all(0.5 <= ln.confidence <= 1 for ln in image.lines)


def test_multi_page_tiff_keeps_its_pages_and_gif_reads_only_its_first_frame(
    ocr: RapidOcrEngine, limits: IngestLimits
) -> None:
    first, second = draw_page(["Glacier retreat accelerated."]), draw_page(["Penguins huddle."])
    tiff = encode(first, "TIFF", save_all=True, append_images=[second], compression="tiff_lzw")
    doc = _doc(parse_document(tiff, "scan.tif", limits, ocr=ocr))
    assert doc.page_count == 2
    assert [p.number for p in doc.pages] == [1, 2]
    assert "Glacier" in doc.text[doc.pages[0].char_start : doc.pages[0].char_end]
    assert "Penguins" in doc.text[doc.pages[1].char_start : doc.pages[1].char_end]
    gif = encode(first, "GIF", save_all=True, append_images=[second], duration=100)
    animated = _doc(parse_document(gif, "anim.gif", limits, ocr=ocr))
    assert "Glacier" in animated.text
    assert "Penguins" not in animated.text
    assert animated.page_count == 1


def test_scanned_pdf_pages_are_ocrd_with_their_numbers_next_to_text_pages(
    ocr: RapidOcrEngine, limits: IngestLimits, tmp_path: Path
) -> None:
    text_page = make_pdf([["A text layer about orbital mechanics and transfer windows."]])
    scans = scanned_pdf([draw_page(["Invoices are due within thirty days."]),
                         draw_page(["The cave trail closes at dusk."])])  # fmt: skip
    data = mixed_pdf([text_page, scans])
    blobs = LocalBlobStore(tmp_path)
    doc = _doc(parse_document(data, "mixed.pdf", limits, ocr=ocr, page_images=blobs))
    assert doc.kind is DocumentKind.PDF
    assert doc.page_count == 3
    # Spaces folded away: PP-OCRv4's recogniser sometimes drops one (CER counts it).
    by_page = {p.number: "".join(doc.text[p.char_start : p.char_end].split()) for p in doc.pages}
    assert "orbital" in by_page[1]
    assert "thirtydays" in by_page[2]
    assert "cavetrail" in by_page[3]
    assert [image.page for image in doc.images] == [2, 3]  # the text page is not OCR'd
    # Rendered at 200 dpi: a 1000x140 px scan at 100 dpi is 2000x280 px (pdfium rounds up).
    first = doc.images[0]
    assert first.width == 2000
    assert abs(first.height - 280) <= 1
    # The page OCR read is stored as it was rendered, once: what the image route serves.
    stored = first.stored
    assert stored is not None
    assert (stored.mime, stored.width, stored.height) == ("image/png", 2000, first.height)
    with Image.open(io.BytesIO(blobs.get(stored.key))) as img:
        assert (img.format, img.size) == ("PNG", (2000, first.height))


def test_without_ocr_a_scan_still_fails_with_a_reason(limits: IngestLimits) -> None:
    scans = scanned_pdf([draw_page(["Signature required upon delivery."])])
    assert _reason(parse_document(scans, "s.pdf", limits)) is FailureReason.NO_TEXT_LAYER
    png = encode(draw_page(["x"]), "PNG")
    assert _reason(parse_document(png, "s.png", limits)) is FailureReason.UNSUPPORTED_TYPE


def test_an_image_without_text_fails_no_text_found(
    ocr: RapidOcrEngine, limits: IngestLimits
) -> None:
    blank = Image.new("RGB", (600, 400), "white")
    outcome = parse_document(encode(blank, "PNG"), "blank.png", limits, ocr=ocr)
    assert _reason(outcome) is FailureReason.NO_TEXT_FOUND
    assert "no text" in outcome.message  # type: ignore[union-attr]
    scan = parse_document(scanned_pdf([blank]), "blank.pdf", limits, ocr=ocr)
    assert _reason(scan) is FailureReason.NO_TEXT_FOUND


def test_limits_pixels_pages_and_time(ocr: RapidOcrEngine) -> None:
    page = draw_page(["Order number 88-5521."])
    png = encode(page, "PNG")
    few_pixels = IngestLimits(max_image_pixels=100_000)
    assert _reason(parse_document(png, "p.png", few_pixels, ocr=ocr)) is FailureReason.TOO_LARGE
    tiff = encode(page, "TIFF", save_all=True, append_images=[page.copy()] * 2)
    two_pages = IngestLimits(max_ocr_pages=2)
    outcome = parse_document(tiff, "t.tif", two_pages, ocr=ocr)
    assert _reason(outcome) is FailureReason.TOO_MANY_PAGES
    scans = scanned_pdf([page] * 3)
    assert (
        _reason(parse_document(scans, "s.pdf", two_pages, ocr=ocr)) is FailureReason.TOO_MANY_PAGES
    )
    hurried = IngestLimits(ocr_time_limit_s=0.001)
    outcome = parse_document(tiff, "t.tif", hurried, ocr=ocr)
    assert _reason(outcome) is FailureReason.OCR_TIME_LIMIT
    # The deadline is checked before each page: page 1 is read, page 2 refused once the
    # (injected) clock has passed it.
    now = [0.0]
    run = OcrPass(ocr, IngestLimits(ocr_time_limit_s=10), clock=lambda: now[0])
    assembler = TextAssembler(max_chars=10_000)
    assert run.read(assembler, 1, page).lines
    now[0] = 11.0
    with pytest.raises(ParseError, match="page 2") as caught:
        run.read(assembler, 2, page)
    assert caught.value.reason is FailureReason.OCR_TIME_LIMIT


def test_models_are_verified_by_sha256_before_loading(tmp_path: Path) -> None:
    import rapidocr_onnxruntime  # noqa: PLC0415

    shipped = Path(rapidocr_onnxruntime.__file__).parent / "models"
    for name in OCR_MODEL_PINS:
        shutil.copy(shipped / name, tmp_path / name)
        with (shipped / name).open("rb") as fh:
            assert hashlib.file_digest(fh, "sha256").hexdigest() == OCR_MODEL_PINS[name]
    rec = tmp_path / "ch_PP-OCRv4_rec_infer.onnx"
    rec.write_bytes(rec.read_bytes()[:-1] + b"\x00")
    with pytest.raises(OcrIntegrityError, match="sha256"):
        RapidOcrEngine(models_dir=tmp_path).load()
    rec.unlink()
    with pytest.raises(OcrIntegrityError, match="missing"):
        RapidOcrEngine(models_dir=tmp_path).recognize(Image.new("RGB", (64, 64)))


def test_reading_order_joins_one_visual_row_left_to_right() -> None:
    def box(text: str, left: float, top: float) -> RecognizedLine:
        return RecognizedLine(text, 0.9, left, top, left + 100, top + 30)

    rows = reading_order([box("right", 600, 102), box("below", 40, 200), box("left", 40, 100)])
    assert [[ln.text for ln in row] for row in rows] == [["left", "right"], ["below"]]


def test_chunks_of_a_scan_carry_their_page_image(
    ocr: RapidOcrEngine, limits: IngestLimits, bge_tokenizer: object, tmp_path: Path
) -> None:
    from ingest.chunker import chunk_document  # noqa: PLC0415

    data = scanned_pdf([draw_page(["Quantum dots emit light."]), draw_page(["Bring a torch."])])
    blobs = LocalBlobStore(tmp_path)
    doc = _doc(parse_document(data, "s.pdf", limits, ocr=ocr, page_images=blobs))
    chunks = chunk_document(doc, bge_tokenizer)  # type: ignore[arg-type]
    scans = {image.page: image for image in doc.images}
    refs = [image_ref(doc, scans, c) for c in chunks]
    assert {r.page for r in refs if r} == {c.page for c in chunks}
    for ref in refs:
        assert ref is not None
        # The page's stored image, not the upload: what the route and the reranker read.
        stored = blobs.get(ref.blob_id)
        assert ref.blob_id == hashlib.sha256(stored).hexdigest() != content_sha256(data)
        assert ref.mime == "image/png"
        with Image.open(io.BytesIO(stored)) as img:
            assert img.size == (ref.width, ref.height)
        assert ref.width == 2000
        assert abs(ref.height - 280) <= 1
        assert ref.ocr_confidence is not None
        assert ref.ocr_min_confidence is not None
        assert 0.5 <= ref.ocr_min_confidence <= ref.ocr_confidence <= 1
