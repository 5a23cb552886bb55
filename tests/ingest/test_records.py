"""JSON and BEIR-style JSONL records: good records become documents, bad ones fail alone."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from core.errors import InvalidInput, PayloadTooLarge
from ingest import (
    DocumentKind,
    ExtractedDocument,
    FailureReason,
    IngestLimits,
    ParseFailure,
    iter_jsonl_records,
    read_json_records,
)
from tests.ingest.conftest import SCIFACT_CORPUS


def test_json_body_records(limits: IngestLimits) -> None:
    body = {
        "documents": [
            {"id": "a", "text": "Alpha text.\r\nLine two.", "title": "Alpha", "metadata": {"k": 1}},
            {"id": 7, "text": "Numeric id."},
            {"id": "", "text": "no id"},
            {"id": "b", "text": "   "},
            {"id": "c", "text": 42},
            {"id": "d", "text": "ok", "metadata": ["not", "a", "dict"]},
            "not an object",
            {"id": "a", "text": "Duplicate of a."},
        ]
    }
    out = read_json_records(json.dumps(body).encode(), limits)
    assert len(out) == 8
    first = out[0]
    assert isinstance(first, ExtractedDocument)
    assert first.document_id == "a"
    assert first.text == "Alpha text.\nLine two."
    assert first.title == "Alpha"
    assert first.metadata == {"k": 1}
    assert first.kind is DocumentKind.RECORD
    assert isinstance(out[1], ExtractedDocument)
    assert out[1].document_id == "7"
    reasons = [o.reason for o in out[2:] if isinstance(o, ParseFailure)]
    assert reasons == [
        FailureReason.INVALID_RECORD,
        FailureReason.EMPTY_DOCUMENT,
        FailureReason.INVALID_RECORD,
        FailureReason.INVALID_RECORD,
        FailureReason.INVALID_RECORD,
        FailureReason.DUPLICATE_ID,
    ]
    assert out[3].document_id == "b"


def test_record_hash_changes_with_title_and_metadata(limits: IngestLimits) -> None:
    def digest(record: Mapping[str, object]) -> str:
        (doc,) = read_json_records(json.dumps({"documents": [record]}), limits)
        assert isinstance(doc, ExtractedDocument)
        return doc.content_sha256

    base = {"id": "x", "text": "Same text."}
    assert digest(base) == digest(dict(base))
    assert digest(base) != digest({**base, "title": "New title"})
    assert digest(base) != digest({**base, "metadata": {"lang": "en"}})


@pytest.mark.parametrize("body", [b"{not json", b'{"docs": []}', b"[]", b'{"documents": {}}'])
def test_malformed_json_body_is_invalid_input(limits: IngestLimits, body: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        read_json_records(body, limits)
    assert caught.value.code == "invalid_json"


def test_too_many_records_is_refused() -> None:
    body = json.dumps({"documents": [{"id": str(i), "text": "t"} for i in range(3)]})
    with pytest.raises(PayloadTooLarge):
        read_json_records(body, IngestLimits(max_records=2))
    lines = [json.dumps({"_id": str(i), "text": "t"}) for i in range(3)]
    with pytest.raises(PayloadTooLarge):
        list(iter_jsonl_records(lines, IngestLimits(max_records=2)))


def test_jsonl_bad_line_fails_alone(limits: IngestLimits) -> None:
    lines = [
        b'{"_id": "1", "title": "T", "text": "One."}\n',
        b"\n",
        b"{broken\n",
        b'{"_id": "2", "title": "", "text": "Two.", "metadata": {"year": 2020}}\n',
        b"\xff\xfe\n",
    ]
    out = list(iter_jsonl_records(lines, limits, source="corpus.jsonl"))
    assert [o.document_id for o in out if isinstance(o, ExtractedDocument)] == ["1", "2"]
    failures = [o for o in out if isinstance(o, ParseFailure)]
    assert [(f.source, f.reason) for f in failures] == [
        ("corpus.jsonl:3", FailureReason.INVALID_RECORD),
        ("corpus.jsonl:5", FailureReason.INVALID_RECORD),
    ]
    second = out[2]
    assert isinstance(second, ExtractedDocument)
    assert second.title is None  # BEIR's empty title means no title
    assert second.metadata == {"year": 2020}


def test_scifact_corpus_reads_completely(limits: IngestLimits) -> None:
    with SCIFACT_CORPUS.open("rb") as lines:
        out = list(iter_jsonl_records(lines, limits, source="scifact"))
    assert len(out) == 5183
    assert all(isinstance(o, ExtractedDocument) for o in out)
    first = out[0]
    assert isinstance(first, ExtractedDocument)
    assert first.document_id == "4983"
    assert first.title is not None
    assert first.title.startswith("Microstructural development")
