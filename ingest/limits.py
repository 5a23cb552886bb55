"""Limits on what one upload may cost to parse; the services layer fills them from settings."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from core.settings import IngestSettings

__all__ = ["IngestLimits", "limits_from_settings"]

_MIB = 1024 * 1024


class IngestLimits(BaseModel):
    """Upper bounds for parsing files, expanding archives and OCR (bytes, pages, pixels, time)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_file_bytes: Annotated[int, Field(gt=0)] = 50 * _MIB
    max_pages: Annotated[int, Field(gt=0)] = 2000
    # Bounds memory for text extracted from small inputs that expand (PDF streams, HTML).
    max_text_chars: Annotated[int, Field(gt=0)] = 20_000_000
    max_archive_members: Annotated[int, Field(gt=0)] = 10_000
    max_archive_total_bytes: Annotated[int, Field(gt=0)] = 1024 * _MIB
    max_compression_ratio: Annotated[float, Field(gt=1)] = 100.0
    # Below this many uncompressed bytes a high ratio is harmless (a 2 KiB run of spaces).
    ratio_grace_bytes: Annotated[int, Field(ge=0)] = 1 * _MIB
    # 1: an upload may be an archive, archives inside it are refused; 0: no archives at all.
    max_archive_depth: Annotated[int, Field(ge=0, le=4)] = 1
    max_records: Annotated[int, Field(gt=0)] = 1_000_000
    # OCR (images, scanned PDF pages). Pixels are checked before an image is decoded; 50 Mpx
    # is a 600-dpi A3 scan. A page takes about 1-3 s to OCR on one core (bench/ocr.py).
    max_image_pixels: Annotated[int, Field(gt=0)] = 50_000_000
    max_ocr_pages: Annotated[int, Field(gt=0)] = 200
    ocr_time_limit_s: Annotated[float, Field(gt=0)] = 300.0
    # The page images OCR read are stored once at ingest (one per OCR'd page, so at most
    # ``max_ocr_pages`` per document), each within these caps: 4 Mpx holds a 200-dpi scan
    # (long side 2,000 px) whole; larger images are scaled down, and a page still over
    # the byte cap as PNG is stored as JPEG (then halved until it fits). Measured: a full
    # A4 text page at 1414x2000 px is 0.26 MB as PNG; 2000x2000 px of noise, the worst
    # case, 3.6 MB as JPEG.
    max_page_image_pixels: Annotated[int, Field(ge=1024)] = 4_000_000
    max_page_image_bytes: Annotated[int, Field(ge=64 * 1024)] = 4 * _MIB
    # A record's metadata is copied into every chunk's payload and read back by pydantic,
    # whose JSON reader stops at about 200 levels (a record nested ~210 deep was accepted
    # and then made every read of its collection fail): bound both depth and size.
    max_metadata_depth: Annotated[int, Field(ge=1, le=64)] = 16
    max_metadata_bytes: Annotated[int, Field(gt=0)] = 64 * 1024
    # One JSON line is refused unread above this (its text is bounded by max_text_chars).
    max_record_bytes: Annotated[int, Field(gt=0)] = 96 * _MIB
    # CPU seconds one document may spend in its parser (a 4 KB PDF of 20 pages sharing one
    # content stream took 28 s); past it the document fails ``too_expensive``.
    max_parse_seconds: Annotated[float, Field(gt=0)] = 30.0


def limits_from_settings(ingest: IngestSettings) -> IngestLimits:
    """The parse limits of ``SIEVE_INGEST_*`` (sizes, pages, OCR, stored page images, time)."""
    return IngestLimits(
        max_file_bytes=ingest.max_file_bytes,
        max_pages=ingest.max_pages,
        max_image_pixels=ingest.max_image_pixels,
        max_ocr_pages=ingest.max_ocr_pages,
        ocr_time_limit_s=ingest.ocr_time_limit_s,
        max_page_image_pixels=ingest.max_page_image_pixels,
        max_page_image_bytes=ingest.max_page_image_bytes,
        max_parse_seconds=ingest.max_parse_seconds,
    )
