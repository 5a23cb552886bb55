"""Identify a file by its content first (magic bytes, zip directory) and by its name second."""

from __future__ import annotations

import io
import zipfile
from enum import StrEnum
from pathlib import PurePosixPath

__all__ = ["ARCHIVE_TYPES", "Detection", "FileType", "detect_type"]


class FileType(StrEnum):
    """What a blob of bytes is, as far as ingestion cares."""

    TXT = "txt"
    MD = "md"
    HTML = "html"
    PDF = "pdf"
    DOCX = "docx"
    IMAGE = "image"
    ZIP = "zip"
    TAR = "tar"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    EMPTY = "empty"
    UNSUPPORTED = "unsupported"


ARCHIVE_TYPES = frozenset({FileType.ZIP, FileType.TAR, FileType.GZIP, FileType.BZIP2, FileType.XZ})

# Formats we recognise only to refuse them by name. Short magics that plain text can start
# with ("BM", "MZ") are left out: those files have NUL bytes and fail as binary anyway.
_KNOWN_BINARY: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy Office document (.doc/.xls/.ppt)"),
    (0, b"{\\rtf", "RTF document"),
    (0, b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (0, b"Rar!\x1a\x07", "RAR archive"),
    (0, b"\x7fELF", "executable"),
    (0, b"SQLite format 3\x00", "SQLite database"),
    (0, b"OggS", "Ogg media"),
    (4, b"ftyp", "MP4/QuickTime media"),
)
# Images: documents whose text comes from OCR.
_IMAGES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"II*\x00", "TIFF image"),
    (b"MM\x00*", "TIFF image"),
)
# Compressed streams: expanded as tar archives (a compressed single file is refused there).
_COMPRESSED: tuple[tuple[bytes, FileType, str], ...] = (
    (b"\x1f\x8b", FileType.GZIP, "gzip archive"),
    (b"BZh", FileType.BZIP2, "bzip2 archive"),
    (b"\xfd7zXZ\x00", FileType.XZ, "xz archive"),
)
_TEXT_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_HTML_OPENERS = ("<!doctype html", "<html", "<head", "<body")
_HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml"})
_MD_EXTENSIONS = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mdx"})


class Detection:
    """The detected type plus a human word for refusals (e.g. "PNG image")."""

    __slots__ = ("detail", "type")

    def __init__(self, file_type: FileType, detail: str = "") -> None:
        self.type = file_type
        self.detail = detail or file_type.value

    def __repr__(self) -> str:
        return f"Detection({self.type.value!r}, {self.detail!r})"


def detect_type(data: bytes, name: str = "") -> Detection:
    """Return what ``data`` is; ``name``'s extension only decides between text flavours."""
    if not data.strip():
        return Detection(FileType.EMPTY, "empty file")
    head = data[:8192]
    # Some writers put junk before the header; readers accept it within the first KiB.
    if b"%PDF-" in head[:1024]:
        return Detection(FileType.PDF, "PDF")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _detect_zip(data)
    if head[257:262] == b"ustar":
        return Detection(FileType.TAR, "tar archive")
    return _detect_magic(head) or _detect_text(head, name)


def _detect_magic(head: bytes) -> Detection | None:
    for magic, file_type, what in _COMPRESSED:
        if head.startswith(magic):
            return Detection(file_type, what)
    for magic, what in _IMAGES:
        if head.startswith(magic):
            return Detection(FileType.IMAGE, what)
    for offset, magic, what in _KNOWN_BINARY:
        if head[offset : offset + len(magic)] == magic:
            return Detection(FileType.UNSUPPORTED, what)
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return Detection(FileType.IMAGE, "WebP image")
    if b"\x00" in head and not head.startswith(_TEXT_BOMS):
        return Detection(FileType.UNSUPPORTED, "binary content")
    return None


def _detect_zip(data: bytes) -> Detection:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        # Let the archive reader report it: it says "corrupt" with the right source name.
        return Detection(FileType.ZIP, "zip archive")
    if "word/document.xml" in names:
        return Detection(FileType.DOCX, "Word document")
    if "xl/workbook.xml" in names:
        return Detection(FileType.UNSUPPORTED, "Excel workbook (.xlsx)")
    if "ppt/presentation.xml" in names:
        return Detection(FileType.UNSUPPORTED, "PowerPoint presentation (.pptx)")
    if "mimetype" in names and ("META-INF/manifest.xml" in names or "content.opf" in names):
        return Detection(FileType.UNSUPPORTED, "OpenDocument or EPUB file")
    return Detection(FileType.ZIP, "zip archive")


def _detect_text(head: bytes, name: str) -> Detection:
    sniff = head[:2048].decode("utf-8", "ignore").lstrip("\ufeff \t\r\n").lower()
    if sniff.startswith("<?xml"):
        sniff = sniff[sniff.find("?>") + 2 :].lstrip()
    if sniff.startswith(_HTML_OPENERS) or (sniff.startswith("<!--") and "<html" in sniff):
        return Detection(FileType.HTML, "HTML")
    suffix = PurePosixPath(name.replace("\\", "/")).suffix.lower()
    if suffix in _HTML_EXTENSIONS:
        return Detection(FileType.HTML, "HTML")
    if suffix in _MD_EXTENSIONS:
        return Detection(FileType.MD, "Markdown")
    return Detection(FileType.TXT, "text")
