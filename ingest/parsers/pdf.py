"""PDF: text per page via pypdf, page numbers kept; scanned pages rendered and read by OCR.

A page is OCR'd when its text layer has almost no text (under 20 visible characters) and
images cover at least half of it: a scan, perhaps with a stray page number in text. A page
with neither text nor images is blank and skipped.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, LimitReachedError, PdfReadWarning, PyPdfError

from core.errors import InvalidInput
from ingest.documents import FailureReason, PageImage, ParseError
from ingest.limits import IngestLimits
from ingest.ocr import Recognizer
from ingest.page_images import PdfPages
from ingest.page_store import PageImageSink
from ingest.parse_clock import check_parse_clock
from ingest.parsers.assembly import (
    ParsedText,
    TextAssembler,
    normalise_newlines,
    squeeze_blank_lines,
)
from ingest.parsers.images import OcrPass, page_sections

__all__ = ["parse_pdf"]

_MIN_TEXT_CHARS = 20
_MIN_IMAGE_COVERAGE = 0.5


def parse_pdf(
    data: bytes,
    limits: IngestLimits,
    ocr: Recognizer | None = None,
    sink: PageImageSink | None = None,
) -> ParsedText:
    """Parse a PDF page by page (1-based page numbers); OCR its scanned pages if ``ocr``
    (their rendered images go to ``sink``)."""
    # pypdf warns (PdfReadWarning) about recoverable damage in many real files; it must not
    # turn into an error under strict warning filters, and the file still parses.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PdfReadWarning)
        try:
            return _parse(data, limits, ocr, sink)
        except LimitReachedError as exc:
            raise ParseError(
                FailureReason.TOO_LARGE, f"PDF stream over pypdf's limit: {exc}"
            ) from exc
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # pypdf signals a malformed file with a mix of its own and builtin exceptions.
            raise ParseError(FailureReason.CORRUPT_FILE, f"unreadable PDF: {exc}") from exc


def _parse(
    data: bytes, limits: IngestLimits, ocr: Recognizer | None, sink: PageImageSink | None
) -> ParsedText:
    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        try:
            unlocked = reader.decrypt("") != PasswordType.NOT_DECRYPTED
        except DependencyError:
            unlocked = False
        if not unlocked:
            raise ParseError(FailureReason.CORRUPT_FILE, "the PDF is encrypted with a password")
    page_count = len(reader.pages)
    if page_count == 0:
        raise ParseError(FailureReason.EMPTY_DOCUMENT, "the PDF has no pages")
    if page_count > limits.max_pages:
        raise ParseError(
            FailureReason.TOO_MANY_PAGES,
            f"the PDF has {page_count} pages; the limit is {limits.max_pages}",
        )
    texts = []
    for page in reader.pages:
        check_parse_clock()
        text = page.extract_text(visitor_operand_before=_clock_visitor())
        texts.append(squeeze_blank_lines(normalise_newlines(text)))
    sparse = [n for n, text in enumerate(texts) if len("".join(text.split())) < _MIN_TEXT_CHARS]
    scanned = _scanned_pages(data, sparse) if ocr is not None and sparse else set()
    assembler = TextAssembler(max_chars=limits.max_text_chars)
    images = _assemble(data, texts, scanned, assembler, limits, ocr, sink)
    parsed = assembler.build(page_count=page_count)
    if not parsed.text:
        if scanned:
            raise ParseError(
                FailureReason.NO_TEXT_FOUND,
                f"OCR found no text on the {len(scanned)} scanned page(s) of {page_count}",
            )
        hint = "scanned? OCR is not enabled here" if ocr is None else "no scanned pages found"
        raise ParseError(
            FailureReason.NO_TEXT_LAYER,
            f"none of the {page_count} pages has a text layer ({hint})",
        )
    title = _metadata_title(reader)
    return ParsedText(
        text=parsed.text,
        title=title,
        sections=page_sections(parsed) if images else (),
        pages=parsed.pages,
        page_count=page_count,
        images=tuple(images),
    )


def _assemble(  # noqa: PLR0917 - private, one call site
    data: bytes,
    texts: list[str],
    scanned: set[int],
    assembler: TextAssembler,
    limits: IngestLimits,
    ocr: Recognizer | None,
    sink: PageImageSink | None,
) -> list[PageImage]:
    """Add every page in order: text layers as they are, scanned pages through OCR."""
    if not scanned or ocr is None:
        for index, text in enumerate(texts):
            assembler.page(index + 1)
            assembler.paragraph(text)
        return []
    images: list[PageImage] = []
    run = OcrPass(ocr, limits, sink)
    run.check_pages(len(scanned))
    with PdfPages(data) as pdf:
        for index, text in enumerate(texts):
            if index in scanned:
                check_parse_clock()
                image = pdf.render(index, max_pixels=limits.max_image_pixels)
                images.append(run.read(assembler, index + 1, image))
            else:
                assembler.page(index + 1)
                assembler.paragraph(text)
    return images


def _scanned_pages(data: bytes, candidates: list[int]) -> set[int]:
    """Which of the nearly textless pages (0-based) are mostly image: scans to OCR."""
    try:
        with PdfPages(data) as pdf:
            return {n for n in candidates if pdf.image_coverage(n) >= _MIN_IMAGE_COVERAGE}
    except InvalidInput as exc:
        raise ParseError(FailureReason.CORRUPT_FILE, exc.message) from exc


_CHECK_EVERY_OPS = 256


def _clock_visitor() -> Callable[..., None]:
    """A content-operator visitor that checks the parse clock every few hundred operators.

    Many pages sharing one huge content stream cost seconds each (a 4 KB PDF of 20 pages
    took 28 s); the check stops such a document inside a page, not after all of them.
    """
    seen = 0

    def visit(*_: object) -> None:
        nonlocal seen
        seen += 1
        if seen % _CHECK_EVERY_OPS == 0:
            check_parse_clock()

    return visit


def _metadata_title(reader: PdfReader) -> str | None:
    info = reader.metadata
    raw = info.title if info is not None else None
    title = " ".join(str(raw).split()) if raw else ""
    return title or None
