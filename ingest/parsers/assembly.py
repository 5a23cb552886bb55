"""Builds a document's text block by block while recording section and page char offsets."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ingest.documents import FailureReason, Page, PageImage, ParseError, Section
from ingest.parse_clock import check_parse_clock

__all__ = ["ParsedText", "TextAssembler", "normalise_newlines", "squeeze_blank_lines"]

_BLANK_RUNS = re.compile(r"\n[ \t]*(?:\n[ \t]*)+\n")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


@dataclass(frozen=True)
class ParsedText:
    """What a format parser returns; the entry point adds source, hash and metadata."""

    text: str
    title: str | None = None
    sections: tuple[Section, ...] = ()
    pages: tuple[Page, ...] = ()
    page_count: int | None = None
    images: tuple[PageImage, ...] = ()


def normalise_newlines(text: str) -> str:
    """Turn CRLF and lone CR into LF and drop a leading byte-order mark."""
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def squeeze_blank_lines(text: str) -> str:
    """Strip trailing spaces on lines and fold runs of blank lines into one blank line."""
    return _BLANK_RUNS.sub("\n\n", _TRAILING_SPACE.sub("\n", text)).strip()


@dataclass
class TextAssembler:
    """Joins blocks with a blank line; headings and pages start where their next block starts."""

    max_chars: int
    _parts: list[str] = field(default_factory=list)
    _length: int = 0
    _section_starts: list[tuple[str | None, int, int]] = field(default_factory=list)
    _page_starts: list[tuple[int, int]] = field(default_factory=list)
    _pending_page: int | None = None

    def heading(self, title: str, level: int) -> None:
        """Start a new section titled ``title``; its heading text becomes its first block."""
        title = " ".join(title.split())
        if not title:
            return
        self._append(title, section=(title, level))

    def page(self, number: int) -> None:
        """Mark that the following blocks come from page ``number`` (1-based)."""
        self._pending_page = number

    def paragraph(self, text: str) -> int | None:
        """Add one block of text (internal newlines kept); return where it starts.

        Blank blocks are ignored (None). The offset is of the stripped block.
        """
        text = text.strip()
        if not text:
            return None
        self._append(text, section=None)
        return self._length - len(text)

    def _append(self, text: str, section: tuple[str, int] | None) -> None:
        check_parse_clock()  # every parser feeds its blocks through here
        if self._length:
            self._parts.append("\n\n")
            self._length += 2
        if section is not None:
            self._section_starts.append((section[0], section[1], self._length))
        if self._pending_page is not None:
            self._page_starts.append((self._pending_page, self._length))
            self._pending_page = None
        self._parts.append(text)
        self._length += len(text)
        if self._length > self.max_chars:
            raise ParseError(
                FailureReason.TOO_LARGE,
                f"extracted text is over the limit of {self.max_chars} characters",
            )

    def build(self, *, title: str | None = None, page_count: int | None = None) -> ParsedText:
        """Return the joined text with contiguous sections and page spans."""
        text = "".join(self._parts)
        return ParsedText(
            text=text,
            title=title,
            sections=spans_to_sections(self._section_starts, len(text)),
            pages=tuple(
                Page(number=number, char_start=start, char_end=end)
                for (number, start), end in zip(
                    self._page_starts,
                    _ends([s for _, s in self._page_starts], len(text)),
                    strict=True,
                )
            ),
            page_count=page_count,
        )


def spans_to_sections(starts: list[tuple[str | None, int, int]], size: int) -> tuple[Section, ...]:
    """Turn (title, level, start) marks into sections that cover ``[0, size)`` without gaps."""
    if not starts:
        return ()
    marks = list(starts)
    if marks[0][2] > 0:
        marks.insert(0, (None, 0, 0))
    return tuple(
        Section(title=title, level=level, char_start=start, char_end=end)
        for (title, level, start), end in zip(
            marks, _ends([m[2] for m in marks], size), strict=True
        )
    )


def _ends(starts: list[int], size: int) -> list[int]:
    """Each span ends where the next one starts; the last one at ``size``."""
    return [*starts[1:], size] if starts else []
