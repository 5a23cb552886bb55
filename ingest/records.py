"""Documents sent as records: a JSON body ``{"documents": [...]}`` or BEIR-style JSONL lines.

Both are read one record at a time: the count limit is checked before each record is
decoded, each record is validated (id, text, metadata depth, size and numbers) as it comes,
and nothing but the outcomes is kept, so a hostile body costs about its own size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping

from core.errors import InvalidInput, PayloadTooLarge
from core.ids import content_sha256, document_id_problem
from core.numbers import number_problem
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

__all__ = [
    "check_metadata",
    "iter_json_records",
    "iter_jsonl_records",
    "loads_json",
    "read_json_records",
    "record_to_document",
]

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_TOO_DEEP = "the JSON nests too deeply"


def loads_json(data: bytes | str) -> object:
    """``json.loads`` whose failures, deep nesting included, are ``InvalidInput``.

    Raises:
        InvalidInput: not UTF-8, not JSON, or nested past the parser's recursion limit.
    """
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise InvalidInput(_TOO_DEEP, code="invalid_json") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", code="invalid_json") from exc


def read_json_records(data: bytes | str, limits: IngestLimits) -> list[ParseOutcome]:
    """Read ``{"documents": [{"id", "text", "title", "metadata"}]}``; bad records fail alone.

    Raises:
        InvalidInput: the body is not JSON or has no ``documents`` list.
        PayloadTooLarge: more records than ``limits.max_records``.
    """
    return list(iter_json_records(data, limits))


def iter_json_records(data: bytes | str, limits: IngestLimits) -> Iterator[ParseOutcome]:
    """Yield the records of a ``{"documents": [...]}`` body one at a time, as they are decoded.

    A consumer that keeps the outcomes must treat an exception as refusing the whole body
    (records before it were yielded already).

    Raises:
        InvalidInput: the body is not JSON, nests too deeply, or has no ``documents`` list.
        PayloadTooLarge: more records than ``limits.max_records`` (before decoding the next).
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInput("the body is not UTF-8", code="invalid_json") from exc
    else:
        text = data
    reader = _Reader(text)
    reader.expect("{", 'expected an object with a "documents" list')
    found = False
    if not reader.take("}"):
        while True:
            key = reader.value()
            if not isinstance(key, str):
                raise InvalidInput("object keys must be strings", code="invalid_json")
            reader.expect(":", "expected ':' after a key")
            if key == "documents":
                if found:
                    raise InvalidInput('"documents" appears twice', code="invalid_json")
                found = True
                yield from _documents(reader, limits)
            else:
                reader.value()  # other keys are read and ignored, as before
            if reader.take("}"):
                break
            reader.expect(",", "expected ',' or '}' in the object")
    reader.end()
    if not found:
        raise InvalidInput('expected an object with a "documents" list', code="invalid_json")


def _documents(reader: _Reader, limits: IngestLimits) -> Iterator[ParseOutcome]:
    reader.expect("[", 'expected an object with a "documents" list')
    if reader.take("]"):
        return
    seen: set[str] = set()
    n = 0
    while True:
        if n >= limits.max_records:
            raise PayloadTooLarge(f"more than {limits.max_records} documents; that is the limit")
        record = reader.value()
        yield _checked_unique(record_to_document(record, f"documents[{n}]", limits), seen)
        n += 1
        if reader.take("]"):
            return
        reader.expect(",", "expected ',' or ']' in the documents list")


class _Reader:
    """A cursor over JSON text that decodes one value at a time (``raw_decode``)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _skip(self) -> None:
        match = _WS.match(self.text, self.pos)
        self.pos = match.end() if match else self.pos

    def take(self, char: str) -> bool:
        self._skip()
        if self.text.startswith(char, self.pos):
            self.pos += 1
            return True
        return False

    def expect(self, char: str, message: str) -> None:
        if not self.take(char):
            raise InvalidInput(
                f"the body is not valid JSON: {message} (char {self.pos})", code="invalid_json"
            )

    def value(self) -> object:
        self._skip()
        try:
            value, self.pos = _DECODER.raw_decode(self.text, self.pos)
        except RecursionError as exc:
            raise InvalidInput(_TOO_DEEP, code="invalid_json") from exc
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"the body is not valid JSON: {exc}", code="invalid_json") from exc
        return value

    def end(self) -> None:
        self._skip()
        if self.pos != len(self.text):
            raise InvalidInput(
                f"the body is not valid JSON: extra data (char {self.pos})", code="invalid_json"
            )


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
        if len(line) > limits.max_record_bytes:
            yield ParseFailure(
                source=where,
                reason=FailureReason.TOO_LARGE,
                message=f"the line is over the limit of {limits.max_record_bytes} bytes",
            )
            continue
        try:
            record = json.loads(line)
        except RecursionError:
            yield ParseFailure(source=where, reason=FailureReason.INVALID_RECORD, message=_TOO_DEEP)
            continue
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
    if (problem := document_id_problem(doc_id)) is not None:
        return _failure(source, None, FailureReason.INVALID_RECORD, problem)
    try:
        return _record_document(record, doc_id, source, limits)
    except ParseError as exc:
        return _failure(source, doc_id, exc.reason, exc.message, exc.field)


_NEEDS_ID = 'a record must be an object with a non-empty string "id" (or "_id")'


def _record_id(record: Mapping[str, object]) -> str | None:
    raw_id = record.get("id", record.get("_id"))
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    if not isinstance(raw_id, str) or not raw_id.strip():
        return None
    return raw_id


def _record_document(
    record: Mapping[str, object], doc_id: str, source: str, limits: IngestLimits
) -> ExtractedDocument:
    text, title, metadata = record.get("text"), record.get("title"), record.get("metadata")
    if not isinstance(text, str):
        raise ParseError(FailureReason.INVALID_RECORD, '"text" must be a string', field="text")
    if title is not None and not isinstance(title, str):
        raise ParseError(FailureReason.INVALID_RECORD, '"title" must be a string', field="title")
    if metadata is not None and not isinstance(metadata, dict):
        raise ParseError(
            FailureReason.INVALID_RECORD, '"metadata" must be an object', field="metadata"
        )
    if metadata:
        check_metadata(metadata, limits)
    text = normalise_newlines(text)
    if not text.strip():
        raise ParseError(FailureReason.EMPTY_DOCUMENT, "the record has no text", field="text")
    if len(text) > limits.max_text_chars:
        raise ParseError(
            FailureReason.TOO_LARGE,
            f"text is over the limit of {limits.max_text_chars} characters",
            field="text",
        )
    title = (title or "").strip() or None
    # The hash covers title and metadata too: editing either must re-index the chunks.
    canonical = json.dumps(
        {"text": text, "title": title, "metadata": metadata or {}},
        sort_keys=True,
        ensure_ascii=False,
        allow_nan=False,
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


def check_metadata(metadata: Mapping[str, object], limits: IngestLimits) -> None:
    """Refuse metadata that nests too deeply, is too large, or holds numbers JSON can't keep.

    Walked without recursion, so the check itself never hits the recursion limit.

    Raises:
        ParseError: ``invalid_record`` naming the field (``metadata.a.b[2]``), or
            ``too_large``.
    """
    stack: list[tuple[str, object, int]] = [("metadata", metadata, 1)]
    while stack:
        where, value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limits.max_metadata_depth:
                raise ParseError(
                    FailureReason.INVALID_RECORD,
                    f"{where} nests deeper than {limits.max_metadata_depth} levels",
                    field=where,
                )
            if isinstance(value, dict):
                stack.extend((f"{where}.{k}", v, depth + 1) for k, v in value.items())
            else:
                stack.extend((f"{where}[{i}]", v, depth + 1) for i, v in enumerate(value))
        elif (problem := number_problem(value)) is not None:
            raise ParseError(FailureReason.INVALID_RECORD, f"{where}: {problem}", field=where)
    size = len(json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
    if size > limits.max_metadata_bytes:
        raise ParseError(
            FailureReason.TOO_LARGE,
            f"metadata is {size} bytes; the limit is {limits.max_metadata_bytes}",
            field="metadata",
        )


def _failure(
    source: str,
    doc_id: str | None,
    reason: FailureReason,
    message: str,
    field: str | None = None,
) -> ParseFailure:
    return ParseFailure(
        source=source, reason=reason, message=message, document_id=doc_id, field=field
    )


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
