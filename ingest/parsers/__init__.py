"""One parser per format, keyed by the type detected from the file's content."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any

from core.errors import InvalidInput, SieveError
from core.ids import content_sha256
from ingest.detect import ARCHIVE_TYPES, FileType, detect_type
from ingest.documents import (
    DocumentKind,
    ExtractedDocument,
    FailureReason,
    ParseError,
    ParseFailure,
    ParseOutcome,
)
from ingest.limits import IngestLimits
from ingest.ocr import Recognizer
from ingest.page_store import PageImageSink
from ingest.parse_clock import parse_clock
from ingest.parsers.assembly import ParsedText
from ingest.parsers.html import parse_html
from ingest.parsers.images import parse_image
from ingest.parsers.markdown import parse_md
from ingest.parsers.pdf import parse_pdf
from ingest.parsers.plaintext import parse_txt
from ingest.parsers.word import parse_docx

__all__ = ["OCR_PARSERS", "PARSERS", "OcrParser", "Parser", "parse_document"]

logger = logging.getLogger(__name__)

Parser = Callable[[bytes, IngestLimits], ParsedText]
OcrParser = Callable[[bytes, IngestLimits, Recognizer | None, PageImageSink | None], ParsedText]

PARSERS: Mapping[FileType, tuple[DocumentKind, Parser]] = MappingProxyType(
    {
        FileType.TXT: (DocumentKind.TXT, parse_txt),
        FileType.MD: (DocumentKind.MD, parse_md),
        FileType.HTML: (DocumentKind.HTML, parse_html),
        FileType.PDF: (DocumentKind.PDF, parse_pdf),
        FileType.DOCX: (DocumentKind.DOCX, parse_docx),
    }
)
# Formats whose text may come from OCR: they take the recognizer (None: OCR is off).
OCR_PARSERS: Mapping[FileType, tuple[DocumentKind, OcrParser]] = MappingProxyType(
    {
        FileType.PDF: (DocumentKind.PDF, parse_pdf),
        FileType.IMAGE: (DocumentKind.IMAGE, parse_image),
    }
)


def parse_document(
    data: bytes,
    source: str,
    limits: IngestLimits,
    *,
    document_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    ocr: Recognizer | None = None,
    page_images: PageImageSink | None = None,
) -> ParseOutcome:
    """Parse one file into an ``ExtractedDocument``, or say why not; bad input never raises.

    ``ocr`` reads images and scanned PDF pages; without it they fail with a reason. The
    image of every page it reads is stored in ``page_images`` (under the same limits and
    parse clock), once: nothing decodes the upload again to show or rerank a page.

    Raises:
        SieveError: only for faults of this process, not of the file (e.g. the OCR models
            fail their integrity check: ``ocr_unavailable``).
    """
    try:
        kind, parsed = _extract(data, source, limits, ocr, page_images)
    except ParseError as exc:
        return ParseFailure(
            source=source, reason=exc.reason, message=exc.message, document_id=document_id
        )
    return ExtractedDocument(
        text=parsed.text,
        source=source,
        kind=kind,
        content_sha256=content_sha256(data),
        size_bytes=len(data),
        title=parsed.title or _title_from_name(source),
        document_id=document_id,
        sections=parsed.sections,
        pages=parsed.pages,
        page_count=parsed.page_count,
        images=parsed.images,
        metadata=dict(metadata or {}),
    )


def _extract(
    data: bytes,
    source: str,
    limits: IngestLimits,
    ocr: Recognizer | None,
    sink: PageImageSink | None,
) -> tuple[DocumentKind, ParsedText]:
    if len(data) > limits.max_file_bytes:
        raise ParseError(
            FailureReason.TOO_LARGE, f"{len(data)} bytes; the limit is {limits.max_file_bytes}"
        )
    detection = detect_type(data, source)
    if detection.type is FileType.EMPTY:
        raise ParseError(FailureReason.EMPTY_DOCUMENT, "the file is empty")
    if detection.type in ARCHIVE_TYPES:
        raise ParseError(FailureReason.UNSUPPORTED_TYPE, f"{detection.detail}: not a document")
    kind, parser = _parser_for(detection.type, detection.detail, ocr, sink)
    try:
        with parse_clock(limits.max_parse_seconds):
            parsed = parser(data, limits)
    except ParseError:
        raise
    except InvalidInput as exc:
        raise ParseError(FailureReason.CORRUPT_FILE, exc.message) from exc
    except SieveError:
        raise
    except RecursionError as exc:
        raise ParseError(
            FailureReason.CORRUPT_FILE, f"{detection.detail} nests too deeply"
        ) from exc
    except Exception as exc:
        # Third-party parsers raise anything on malformed input; one bad file must not stop
        # the batch, so anything unexpected is that file's failure (logged for us to fix).
        logger.warning(
            "parser crashed", extra={"source": source, "kind": kind.value, "error": repr(exc)}
        )
        raise ParseError(FailureReason.CORRUPT_FILE, f"unreadable {detection.detail}") from exc
    if not parsed.text.strip():
        raise ParseError(FailureReason.EMPTY_DOCUMENT, "no text in the document")
    return kind, parsed


def _parser_for(
    file_type: FileType, detail: str, ocr: Recognizer | None, sink: PageImageSink | None
) -> tuple[DocumentKind, Parser]:
    if file_type is FileType.IMAGE and ocr is None:
        raise ParseError(FailureReason.UNSUPPORTED_TYPE, f"{detail}: images need OCR, which is off")
    ocr_entry = OCR_PARSERS.get(file_type)
    if ocr_entry is not None:
        kind, ocr_parser = ocr_entry
        return kind, partial(_with_ocr, ocr_parser, ocr, sink)
    entry = PARSERS.get(file_type)
    if entry is None:
        raise ParseError(FailureReason.UNSUPPORTED_TYPE, f"{detail} is not supported")
    return entry


def _with_ocr(
    parser: OcrParser,
    ocr: Recognizer | None,
    sink: PageImageSink | None,
    data: bytes,
    limits: IngestLimits,
) -> ParsedText:
    return parser(data, limits, ocr, sink)


def _title_from_name(source: str) -> str | None:
    stem = PurePosixPath(source.replace("\\", "/")).stem
    return stem or None
