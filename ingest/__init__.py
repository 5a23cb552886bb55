"""Ingestion: parse uploads and records into text, then cut the text into token-sized chunks."""

from __future__ import annotations

from ingest.archives import ArchiveMember, iter_archive, safe_member_path
from ingest.chunker import (
    BatchOffsetTokenizer,
    Chunk,
    ChunkerConfig,
    OffsetTokenizer,
    chunk_document,
    chunk_documents,
)
from ingest.detect import Detection, FileType, detect_type
from ingest.documents import (
    DocumentKind,
    ExtractedDocument,
    FailureReason,
    Page,
    ParseFailure,
    ParseOutcome,
    Section,
)
from ingest.limits import IngestLimits
from ingest.parsers import parse_document
from ingest.records import iter_jsonl_records, read_json_records, record_to_document
from ingest.tokenizer import HfOffsetTokenizer, bge_small_tokenizer_path, load_bge_small_tokenizer
from ingest.upload import parse_upload

__all__ = [
    "ArchiveMember",
    "BatchOffsetTokenizer",
    "Chunk",
    "ChunkerConfig",
    "Detection",
    "DocumentKind",
    "ExtractedDocument",
    "FailureReason",
    "FileType",
    "HfOffsetTokenizer",
    "IngestLimits",
    "OffsetTokenizer",
    "Page",
    "ParseFailure",
    "ParseOutcome",
    "Section",
    "bge_small_tokenizer_path",
    "chunk_document",
    "chunk_documents",
    "detect_type",
    "iter_archive",
    "iter_jsonl_records",
    "load_bge_small_tokenizer",
    "parse_document",
    "parse_upload",
    "read_json_records",
    "record_to_document",
    "safe_member_path",
]
