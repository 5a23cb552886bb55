"""One entry point for an uploaded blob: a single file, or an archive holding a collection."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ingest.archives import iter_archive
from ingest.detect import ARCHIVE_TYPES, detect_type
from ingest.documents import ParseFailure, ParseOutcome
from ingest.limits import IngestLimits
from ingest.parsers import parse_document

__all__ = ["parse_upload"]


def parse_upload(
    data: bytes,
    source: str,
    limits: IngestLimits,
    *,
    metadata: Mapping[str, Any] | None = None,
) -> Iterator[ParseOutcome]:
    """Yield one outcome per document: the file itself, or each member of an archive."""
    if limits.max_archive_depth == 0 or detect_type(data, source).type not in ARCHIVE_TYPES:
        yield parse_document(data, source, limits, metadata=metadata)
        return
    for item in iter_archive(data, source, limits):
        if isinstance(item, ParseFailure):
            yield item
        else:
            yield parse_document(item.data, item.path, limits, metadata=metadata)
