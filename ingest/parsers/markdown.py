"""Markdown: the raw text is kept as written; ATX and setext headings become sections."""

from __future__ import annotations

import re

from ingest.documents import FailureReason, ParseError
from ingest.limits import IngestLimits
from ingest.parsers.assembly import ParsedText, spans_to_sections
from ingest.parsers.plaintext import decode_text

__all__ = ["markdown_sections", "parse_md"]

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*[\"']?(.*?)[\"']?[ \t]*$", re.MULTILINE)


def parse_md(data: bytes, limits: IngestLimits) -> ParsedText:
    """Parse a Markdown file without rendering it: headings mark sections."""
    text = decode_text(data)
    if len(text) > limits.max_text_chars:
        raise ParseError(
            FailureReason.TOO_LARGE,
            f"text is over the limit of {limits.max_text_chars} characters",
        )
    marks = markdown_sections(text)
    title = _front_matter_title(text)
    if title is None:
        level_one = [t for t, level, _ in marks if level == 1]
        title = level_one[0] if level_one else next((t for t, _, _ in marks if t), None)
    return ParsedText(text=text, title=title, sections=spans_to_sections(marks, len(text)))


def markdown_sections(text: str) -> list[tuple[str | None, int, int]]:
    """Return (title, level, char_start) for each heading outside fenced code blocks."""
    marks: list[tuple[str | None, int, int]] = []
    fence: str | None = None
    offset = 0
    previous: tuple[str, int] | None = None  # the last line if it could be a setext title
    for line in text.split("\n"):
        start, offset = offset, offset + len(line) + 1
        opener = _FENCE.match(line)
        if fence is not None:
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence):
                fence = None
            continue
        if opener:
            fence, previous = opener.group(1), None
            continue
        atx = _ATX.match(line)
        if atx:
            title = (atx.group(2) or "").strip()
            if title:
                marks.append((title, len(atx.group(1)), start))
            previous = None
            continue
        setext = _SETEXT.match(line)
        if setext and previous is not None:
            marks.append((previous[0], 1 if setext.group(1)[0] == "=" else 2, previous[1]))
            previous = None
            continue
        stripped = line.strip()
        # A setext title is one plain line under a blank line (not a list item or a table row).
        is_candidate = stripped and not stripped.startswith(("-", "*", "+", ">", "|"))
        previous = (stripped, start) if is_candidate and _after_blank(text, start) else None
    return marks


def _after_blank(text: str, start: int) -> bool:
    return start == 0 or text[max(0, start - 2) : start] == "\n\n" or text[:start].strip() == ""


def _front_matter_title(text: str) -> str | None:
    if not text.startswith("---\n"):
        return None
    end = text.find("\n---", 4)
    if end < 0:
        return None
    found = _FRONT_MATTER_TITLE.search(text, 4, end)
    return found.group(1).strip() or None if found else None
