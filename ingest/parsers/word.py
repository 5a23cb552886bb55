"""DOCX: paragraphs in document order, heading styles as sections, tables as tab-separated rows."""

from __future__ import annotations

import io
import re
import zipfile

import docx
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph

from ingest.archives import check_zip_directory
from ingest.documents import FailureReason, ParseError
from ingest.limits import IngestLimits
from ingest.parsers.assembly import ParsedText, TextAssembler

__all__ = ["parse_docx"]

_HEADING = re.compile(r"^Heading (\d)$")


def parse_docx(data: bytes, limits: IngestLimits) -> ParsedText:
    """Parse a Word document: paragraphs, headings as sections, tables as text, in order."""
    try:
        # python-docx inflates whole parts into memory: refuse a packed bomb before it does.
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            check_zip_directory(zf, len(data), limits)
        document = docx.Document(io.BytesIO(data))
    except ParseError:
        raise
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ParseError(FailureReason.CORRUPT_FILE, f"unreadable Word document: {exc}") from exc
    assembler = TextAssembler(max_chars=limits.max_text_chars)
    title: str | None = None
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            assembler.paragraph(_table_text(block))
            continue
        level = _heading_level(block)
        if level is None:
            assembler.paragraph(block.text)
            continue
        assembler.heading(block.text, level)
        if title is None and level <= 1:
            title = " ".join(block.text.split()) or None
    core_title = (document.core_properties.title or "").strip()
    return assembler.build(title=core_title or title)


def _heading_level(paragraph: Paragraph) -> int | None:
    """``Title`` is level 1 like ``Heading 1``; other styles are body text."""
    name = paragraph.style.name if paragraph.style is not None else ""
    if name == "Title":
        return 1
    match = _HEADING.match(name or "")
    return int(match.group(1)) if match else None


def _table_text(table: Table) -> str:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans; keep it once.
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append("\t".join(cells))
    return "\n".join(rows)
