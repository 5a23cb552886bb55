"""Documents sent as records: a JSON body ``{"documents": [...]}`` or BEIR-style JSONL lines."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping

from core.errors import InvalidInput, PayloadTooLarge
from core.ids import content_sha256
from ingest.documents import (
    DocumentKind,
    ExtractedDocument,
    FailureReason,
    ParseError,
    ParseFailure,
    ParseOutcome,
)
from ingest.limits import IngestLimits
from ingest.parsers.assembly import normalise_newlines

__all__ = ["iter_jsonl_records", "read_json_records", "record_to_document"]


def read_json_records(data: bytes | str, limits: IngestLimits) -> list[ParseOutcome]:
    """Read ``{"documents": [{"id", "text", "title", "metadata"}]}``; bad records fail alone.

    Raises:
        InvalidInput: the body is not JSON or has no ``documents`` list.
        PayloadTooLarge: more records than ``limits.max_records``.
    """
    try:
        body = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", code="invalid_json") from exc
    documents = body.get("documents") if isinstance(body, dict) else None
    if not isinstance(documents, list):
        raise InvalidInput('expected an object with a "documents" list', code="invalid_json")
    if len(documents) > limits.max_records:
        raise PayloadTooLarge(f"{len(documents)} documents; the limit is {limits.max_records}")
    seen: set[str] = set()
    return [
        _checked_unique(record_to_document(record, f"documents[{n}]", limits), seen)
        for n, record in enumerate(documents)
    ]


def iter_jsonl_records(
    lines: Iterable[bytes | str], limits: IngestLimits, *, source: str = "jsonl"
) -> Iterator[ParseOutcome]:
    """Read JSON lines in the BEIR corpus layout (``_id``, ``title``, ``text``, ``metadata``).

    A malformed line or record fails alone; blank lines are skipped.

    Raises:
        PayloadTooLarge: more records than ``limits.max_records``.
    """
    seen: set[str] = set()
    count = 0
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        count += 1
        if count > limits.max_records:
            raise PayloadTooLarge(f"more than {limits.max_records} records in {source}")
        where = f"{source}:{line_no}"
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            message = (
                f"not JSON: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            )
            yield ParseFailure(source=where, reason=FailureReason.INVALID_RECORD, message=message)
            continue
        yield _checked_unique(record_to_document(record, where, limits), seen)


def record_to_document(record: object, source: str, limits: IngestLimits) -> ParseOutcome:
    """Turn one record (``id``/``_id``, ``text``, ``title``?, ``metadata``?) into a document."""
    if not isinstance(record, Mapping) or (doc_id := _record_id(record)) is None:
        return _failure(source, None, FailureReason.INVALID_RECORD, _NEEDS_ID)
    try:
        return _record_document(record, doc_id, source, limits)
    except ParseError as exc:
        return _failure(source, doc_id, exc.reason, exc.message)


_NEEDS_ID = 'a record must be an object with a non-empty string "id" (or "_id")'


def _record_id(record: Mapping[str, object]) -> str | None:
    raw_id = record.get("id", record.get("_id"))
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    if not isinstance(raw_id, str) or not raw_id.strip():
        return None
    return raw_id.strip()


def _record_document(
    record: Mapping[str, object], doc_id: str, source: str, limits: IngestLimits
) -> ExtractedDocument:
    text, title, metadata = record.get("text"), record.get("title"), record.get("metadata")
    if not isinstance(text, str):
        raise ParseError(FailureReason.INVALID_RECORD, '"text" must be a string')
    if title is not None and not isinstance(title, str):
        raise ParseError(FailureReason.INVALID_RECORD, '"title" must be a string')
    if metadata is not None and not isinstance(metadata, dict):
        raise ParseError(FailureReason.INVALID_RECORD, '"metadata" must be an object')
    text = normalise_newlines(text)
    if not text.strip():
        raise ParseError(FailureReason.EMPTY_DOCUMENT, "the record has no text")
    if len(text) > limits.max_text_chars:
        raise ParseError(
            FailureReason.TOO_LARGE, f"text is over the limit of {limits.max_text_chars} characters"
        )
    title = (title or "").strip() or None
    # The hash covers title and metadata too: editing either must re-index the chunks.
    canonical = json.dumps(
        {"text": text, "title": title, "metadata": metadata or {}},
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return ExtractedDocument(
        text=text,
        source=source,
        kind=DocumentKind.RECORD,
        content_sha256=content_sha256(canonical),
        size_bytes=len(text.encode("utf-8")),
        title=title,
        document_id=doc_id,
        metadata=dict(metadata or {}),
    )


def _failure(source: str, doc_id: str | None, reason: FailureReason, message: str) -> ParseFailure:
    return ParseFailure(source=source, reason=reason, message=message, document_id=doc_id)


def _checked_unique(outcome: ParseOutcome, seen: set[str]) -> ParseOutcome:
    """A repeated id fails instead of silently replacing the earlier record's chunks."""
    doc_id = outcome.document_id
    if doc_id is None:
        return outcome
    if doc_id in seen and isinstance(outcome, ExtractedDocument):
        return ParseFailure(
            source=outcome.source,
            reason=FailureReason.DUPLICATE_ID,
            message=f"id {doc_id!r} appeared earlier in the batch",
            document_id=doc_id,
        )
    seen.add(doc_id)
    return outcome
