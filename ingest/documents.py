"""What parsing produces: an extracted document with char-offset structure, or a failure value."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import InvalidInput, PayloadTooLarge
from ingest.page_store import StoredPage

__all__ = [
    "DocumentKind",
    "ExtractedDocument",
    "FailureReason",
    "OcrLine",
    "Page",
    "PageImage",
    "ParseError",
    "ParseFailure",
    "ParseOutcome",
    "Section",
]


class FailureReason(StrEnum):
    """Stable machine codes for why one file or record was not turned into text."""

    UNSUPPORTED_TYPE = "unsupported_type"
    CORRUPT_FILE = "corrupt_file"
    EMPTY_DOCUMENT = "empty_document"
    NO_TEXT_LAYER = "no_text_layer"
    NO_TEXT_FOUND = "no_text_found"
    OCR_TIME_LIMIT = "ocr_time_limit"
    TOO_LARGE = "too_large"
    TOO_MANY_PAGES = "too_many_pages"
    ENCODING_ERROR = "encoding_error"
    ARCHIVE_TOO_LARGE = "archive_too_large"
    ARCHIVE_RATIO_EXCEEDED = "archive_ratio_exceeded"
    ARCHIVE_TOO_MANY_FILES = "archive_too_many_files"
    NESTED_ARCHIVE = "nested_archive"
    UNSAFE_PATH = "unsafe_path"
    INVALID_RECORD = "invalid_record"
    DUPLICATE_ID = "duplicate_id"
    TOO_EXPENSIVE = "too_expensive"


_TOO_LARGE = frozenset(
    {
        FailureReason.TOO_LARGE,
        FailureReason.TOO_MANY_PAGES,
        FailureReason.OCR_TIME_LIMIT,
        FailureReason.ARCHIVE_TOO_LARGE,
        FailureReason.ARCHIVE_RATIO_EXCEEDED,
        FailureReason.ARCHIVE_TOO_MANY_FILES,
        FailureReason.TOO_EXPENSIVE,
    }
)


class DocumentKind(StrEnum):
    """The detected format a document's text came from."""

    TXT = "txt"
    MD = "md"
    HTML = "html"
    PDF = "pdf"
    DOCX = "docx"
    IMAGE = "image"
    RECORD = "record"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ParseFailure(_Frozen):
    """One file or record that could not be used, and why; the rest of the batch goes on."""

    source: str
    reason: FailureReason
    message: str
    document_id: str | None = None
    # The record field at fault (``metadata.score``), when one is.
    field: str | None = None

    def to_error(self) -> InvalidInput:
        """Return the domain error matching this failure (``code`` is the reason)."""
        cls = PayloadTooLarge if self.reason in _TOO_LARGE else InvalidInput
        return cls(f"{self.source}: {self.message}", code=self.reason.value, field=self.field)


class ParseError(Exception):
    """Raised inside parsers; the parse entry points turn it into a ``ParseFailure``."""

    def __init__(self, reason: FailureReason, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.field = field


class Section(_Frozen):
    """A run of the text under one heading (``title`` None before the first heading)."""

    title: str | None
    level: Annotated[int, Field(ge=0, le=9)] = 0
    char_start: Annotated[int, Field(ge=0)]
    char_end: Annotated[int, Field(ge=0)]


class Page(_Frozen):
    """The span of the text that came from one page (1-based ``number``)."""

    number: Annotated[int, Field(ge=1)]
    char_start: Annotated[int, Field(ge=0)]
    char_end: Annotated[int, Field(ge=0)]


class OcrLine(_Frozen):
    """One line the OCR read: where it is in the document text and how sure the model was."""

    char_start: Annotated[int, Field(ge=0)]
    char_end: Annotated[int, Field(ge=0)]
    confidence: Annotated[float, Field(ge=0, le=1)]


class PageImage(_Frozen):
    """A page (or image) whose text came from OCR: its number, the size OCR read, its lines,
    and its image as stored at ingest (None when parsed without a page-image store)."""

    page: Annotated[int, Field(ge=1)]
    width: Annotated[int, Field(gt=0)]
    height: Annotated[int, Field(gt=0)]
    lines: tuple[OcrLine, ...] = ()
    stored: StoredPage | None = None


class ExtractedDocument(_Frozen):
    """A document's extracted text plus its structure as char offsets into ``text``."""

    text: str
    source: str
    kind: DocumentKind
    content_sha256: str
    size_bytes: Annotated[int, Field(ge=0)]
    title: str | None = None
    document_id: str | None = None
    sections: tuple[Section, ...] = ()
    pages: tuple[Page, ...] = ()
    page_count: Annotated[int | None, Field(ge=0)] = None
    # Pages read by OCR (all of an image document's, a PDF's scanned ones).
    images: tuple[PageImage, ...] = ()
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _spans_inside_text(self) -> ExtractedDocument:
        size = len(self.text)
        for spans in (self.sections, self.pages):
            last_end = 0
            for span in spans:
                if not span.char_start <= span.char_end <= size or span.char_start < last_end:
                    raise ValueError("sections and pages must be ordered spans inside the text")
                last_end = span.char_end
        return self


ParseOutcome = ExtractedDocument | ParseFailure
