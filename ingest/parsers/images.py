"""Images (PNG, JPEG, TIFF pages, GIF's first frame, WebP) and scanned pages, read by OCR."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from statistics import median

from PIL import Image

from core.errors import InvalidInput
from ingest.documents import FailureReason, OcrLine, PageImage, ParseError, Section
from ingest.limits import IngestLimits
from ingest.ocr import RecognizedLine, Recognizer, reading_order
from ingest.page_images import (
    RenderedImage,
    encode_page,
    frame_rgb,
    image_frames,
    open_image,
    upload_as_page,
)
from ingest.page_store import PageImageSink, StoredPage
from ingest.parse_clock import check_parse_clock
from ingest.parsers.assembly import ParsedText, TextAssembler, spans_to_sections

__all__ = ["OcrPass", "layout_lines", "page_sections", "parse_image"]

# A vertical gap over this many line heights between two rows starts a new paragraph.
_PARAGRAPH_GAP = 1.6


def layout_lines(lines: Sequence[RecognizedLine]) -> tuple[str, list[tuple[int, int, float]]]:
    """Lines in reading order as text: rows on their own line, paragraphs at wide gaps.

    Returns the text and each line's (char_start, char_end, confidence) within it.
    """
    rows = reading_order(lines)
    if not rows:
        return "", []
    typical = median(line.height for row in rows for line in row) or 1.0
    parts: list[str] = []
    spans: list[tuple[int, int, float]] = []
    at = 0
    previous_bottom: float | None = None
    for row in rows:
        if previous_bottom is not None:
            gap = min(line.top for line in row) - previous_bottom
            sep = "\n\n" if gap > _PARAGRAPH_GAP * typical else "\n"
            parts.append(sep)
            at += len(sep)
        for n, line in enumerate(row):
            if n:
                parts.append(" ")
                at += 1
            parts.append(line.text)
            spans.append((at, at + len(line.text), line.confidence))
            at += len(line.text)
        previous_bottom = max(line.bottom for line in row)
    return "".join(parts), spans


def page_sections(parsed: ParsedText) -> tuple[Section, ...]:
    """One section per page, so that no chunk of a scan spans two pages (its image is one)."""
    return spans_to_sections(
        [(None, 0, page.char_start) for page in parsed.pages], len(parsed.text)
    )


class OcrPass:
    """One document's OCR: the recognizer, its page budget and deadline, and where the
    images of the pages it reads are stored (none: they are not kept)."""

    def __init__(
        self,
        ocr: Recognizer,
        limits: IngestLimits,
        sink: PageImageSink | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ocr = ocr
        self._limits = limits
        self._sink = sink
        self._clock = clock
        self._deadline = clock() + limits.ocr_time_limit_s
        self.pages = 0

    def check_pages(self, count: int) -> None:
        """Refuse a document that would OCR more than the page limit, before starting."""
        if count > self._limits.max_ocr_pages:
            raise ParseError(
                FailureReason.TOO_MANY_PAGES,
                f"{count} pages to OCR; the limit is {self._limits.max_ocr_pages}",
            )

    def read(
        self,
        assembler: TextAssembler,
        number: int,
        image: Image.Image,
        *,
        as_is: RenderedImage | None = None,
        photo: bool = False,
    ) -> PageImage:
        """OCR one page (RGB) into ``assembler`` as page ``number``; return what it read.

        The page's image is stored too: ``as_is`` (the upload itself) when given, else
        ``image`` encoded within the stored-page caps (JPEG for a ``photo``).
        """
        self.pages += 1
        self.check_pages(self.pages)
        check_parse_clock()
        if self._clock() > self._deadline:
            raise ParseError(
                FailureReason.OCR_TIME_LIMIT,
                f"OCR stopped at page {number}: over the limit of "
                f"{self._limits.ocr_time_limit_s:g} s per document",
            )
        text, spans = layout_lines(self._ocr.recognize(image))
        assembler.page(number)
        start = assembler.paragraph(text)
        lines = tuple(
            OcrLine(char_start=start + s, char_end=start + e, confidence=round(c, 4))
            for s, e, c in spans
        ) if start is not None else ()  # fmt: skip
        stored = None
        if self._sink is not None:
            rendered = as_is or encode_page(image, self._limits, photo=photo)
            stored = StoredPage(
                key=self._sink.put(rendered.data),
                mime=rendered.mime,
                width=rendered.width,
                height=rendered.height,
                size=len(rendered.data),
            )
        return PageImage(
            page=number, width=image.width, height=image.height, lines=lines, stored=stored
        )


def parse_image(
    data: bytes, limits: IngestLimits, ocr: Recognizer | None, sink: PageImageSink | None = None
) -> ParsedText:
    """OCR an image file, one page per TIFF frame (GIF and WebP: the first frame); each
    page's image goes to ``sink``."""
    if ocr is None:
        raise ParseError(FailureReason.UNSUPPORTED_TYPE, "images need OCR, which is off here")
    try:
        img = open_image(data, limits.max_image_pixels)
    except InvalidInput as exc:
        reason = FailureReason.TOO_LARGE if exc.code == "too_large" else FailureReason.CORRUPT_FILE
        raise ParseError(reason, exc.message) from exc
    with img:
        what = f"{img.format or 'unknown'} image"
        # Every page is OCR'd: counting stops past the OCR page limit (and the page limit).
        limit = min(limits.max_ocr_pages, limits.max_pages)
        frames = image_frames(img, limit)
        if frames > limit:
            raise ParseError(
                FailureReason.TOO_MANY_PAGES,
                f"the {what} has over {limit} pages; the limit is {limit}",
            )
        run = OcrPass(ocr, limits, sink)
        as_is = upload_as_page(data, img, limits) if frames == 1 else None
        photo = img.format == "JPEG"
        assembler = TextAssembler(max_chars=limits.max_text_chars)
        pages: list[PageImage] = []
        for index in range(frames):
            try:
                frame = frame_rgb(img, index, limits.max_image_pixels)
            except InvalidInput as exc:
                raise ParseError(FailureReason.TOO_LARGE, exc.message) from exc
            pages.append(run.read(assembler, index + 1, frame, as_is=as_is, photo=photo))
    parsed = assembler.build(page_count=frames)
    if not parsed.text:
        raise ParseError(
            FailureReason.NO_TEXT_FOUND,
            f"OCR found no text in the {what} ({frames} page{'s' if frames > 1 else ''})",
        )
    return ParsedText(text=parsed.text, pages=parsed.pages, page_count=frames, images=tuple(pages))
