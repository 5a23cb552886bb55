"""PDF: text per page via pypdf, page numbers kept; no text layer is its own failure."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, LimitReachedError, PdfReadWarning, PyPdfError

from ingest.documents import FailureReason, ParseError
from ingest.limits import IngestLimits
from ingest.parse_clock import check_parse_clock
from ingest.parsers.assembly import (
    ParsedText,
    TextAssembler,
    normalise_newlines,
    squeeze_blank_lines,
)

__all__ = ["parse_pdf"]


def parse_pdf(data: bytes, limits: IngestLimits) -> ParsedText:
    """Parse a PDF's text layer page by page (1-based page numbers)."""
    # pypdf warns (PdfReadWarning) about recoverable damage in many real files; it must not
    # turn into an error under strict warning filters, and the file still parses.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PdfReadWarning)
        try:
            return _parse(data, limits)
        except LimitReachedError as exc:
            raise ParseError(
                FailureReason.TOO_LARGE, f"PDF stream over pypdf's limit: {exc}"
            ) from exc
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # pypdf signals a malformed file with a mix of its own and builtin exceptions.
            raise ParseError(FailureReason.CORRUPT_FILE, f"unreadable PDF: {exc}") from exc


def _parse(data: bytes, limits: IngestLimits) -> ParsedText:
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
    assembler = TextAssembler(max_chars=limits.max_text_chars)
    for number, page in enumerate(reader.pages, start=1):
        check_parse_clock()
        assembler.page(number)
        text = page.extract_text(visitor_operand_before=_clock_visitor())
        assembler.paragraph(squeeze_blank_lines(normalise_newlines(text)))
    parsed = assembler.build(page_count=page_count)
    if not parsed.text:
        raise ParseError(
            FailureReason.NO_TEXT_LAYER,
            f"none of the {page_count} pages has a text layer (scanned? OCR is not applied)",
        )
    title = _metadata_title(reader)
    return ParsedText(text=parsed.text, title=title, pages=parsed.pages, page_count=page_count)


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
