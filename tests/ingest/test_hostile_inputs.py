"""Hostile uploads against the ingest layer: each case here broke something on the old code."""

from __future__ import annotations

import io
import json
import tarfile
import zlib

import pytest

from core.errors import InvalidInput, PayloadTooLarge
from ingest import ExtractedDocument, FailureReason, IngestLimits, ParseFailure, iter_archive
from ingest.archives import scan_archive, stream_archive
from ingest.parsers import parse_document
from ingest.records import iter_json_records, iter_jsonl_records, read_json_records
from ingest.upload import parse_upload
from tests.ingest.samples import shared_stream_pdf


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


# ---------------------------------------------------------------- JSON bodies


def test_a_100k_deep_json_body_is_invalid_input_not_a_recursion_error() -> None:
    body = '{"documents": [' + _deep(100_000) + "]}"
    with pytest.raises(InvalidInput, match="nests too deeply") as refused:
        read_json_records(body.encode(), IngestLimits())
    assert refused.value.code == "invalid_json"


def test_a_deep_jsonl_line_fails_alone() -> None:
    lines = [_deep(100_000), json.dumps({"_id": "ok", "text": "fine"})]
    out = list(iter_jsonl_records(lines, IngestLimits()))
    assert isinstance(out[0], ParseFailure)
    assert out[0].reason is FailureReason.INVALID_RECORD
    assert isinstance(out[1], ExtractedDocument)


def test_max_records_is_checked_before_the_rest_of_the_body_is_decoded() -> None:
    # The old reader decoded the whole body first (and so reported the garbage at the end).
    body = b'{"documents": [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, ' + b"@" * 1000
    records = iter_json_records(body, IngestLimits(max_records=1))
    first = next(records)
    assert isinstance(first, ExtractedDocument)
    with pytest.raises(PayloadTooLarge):
        next(records)


def test_the_streaming_reader_keeps_the_old_reader_s_answers() -> None:
    body = {"x": 1, "documents": [{"id": "a", "text": "one"}, {"id": 2, "text": "two"}], "y": []}
    out = read_json_records(json.dumps(body), IngestLimits())
    assert [o.document_id for o in out] == ["a", "2"]
    for bad in ('{"documents": [}', '{"documents": []} trailing', "[]", '{"other": 1}'):
        with pytest.raises(InvalidInput):
            read_json_records(bad, IngestLimits())


@pytest.mark.parametrize("depth", [17, 210, 300])
def test_deeply_nested_metadata_fails_the_record_naming_the_field(depth: int) -> None:
    nested: object = "leaf"
    for _ in range(depth):
        nested = {"k": nested}
    body = {"documents": [{"id": "deep", "text": "t", "metadata": {"a": nested}}]}
    (out,) = read_json_records(json.dumps(body), IngestLimits())
    assert isinstance(out, ParseFailure)
    assert out.reason is FailureReason.INVALID_RECORD
    assert "metadata.a.k" in out.message


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"score": NaN}', "metadata.score"),
        ('{"a": {"b": [1, Infinity]}}', "metadata.a.b[1]"),
        ('{"n": -Infinity}', "metadata.n"),
        ('{"big": 9223372036854775808}', "metadata.big"),
    ],
)
def test_nan_infinity_and_huge_ints_in_metadata_are_refused_by_name(raw: str, field: str) -> None:
    line = '{"_id": "r", "text": "t", "metadata": ' + raw + "}"
    (out,) = iter_jsonl_records([line], IngestLimits())
    assert isinstance(out, ParseFailure)
    assert field in out.message
    assert out.field == field
    assert out.to_error().field == field  # what a JSON replace answers: a 400 naming it


def test_oversized_metadata_is_refused() -> None:
    body = {"documents": [{"id": "m", "text": "t", "metadata": {"blob": "x" * 70_000}}]}
    (out,) = read_json_records(json.dumps(body), IngestLimits())
    assert isinstance(out, ParseFailure)
    assert out.reason is FailureReason.TOO_LARGE


@pytest.mark.parametrize("doc_id", [" padded ", "x" * 200_000, "tab\there", "\n"])
def test_ids_are_never_trimmed_and_bounded(doc_id: str) -> None:
    (out,) = read_json_records(
        json.dumps({"documents": [{"id": doc_id, "text": "t"}]}), IngestLimits()
    )
    assert isinstance(out, ParseFailure)
    assert out.reason is FailureReason.INVALID_RECORD
    assert out.document_id is None


# ---------------------------------------------------------------- archives


def _tar_gz(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_tar_headers_and_padding_do_not_count_toward_the_ratio() -> None:
    upload = _tar_gz([(f"docs/f{i:05d}.txt", b"same small text\n") for i in range(3000)])
    raw = len(zlib.decompress(upload, wbits=31))
    limits = IngestLimits(max_compression_ratio=50)
    assert raw > len(upload) * 50 > 16 * 3000  # the framing alone breaks the ratio
    items = list(iter_archive(upload, "many.tar.gz", limits))
    assert len(items) == 3000
    assert all(not isinstance(i, ParseFailure) for i in items)


def test_an_archive_over_a_budget_is_refused_whole_by_every_entry_point() -> None:
    upload = _tar_gz([(f"f{i}.txt", b"text %d" % i) for i in range(40)])
    limits = IngestLimits(max_archive_members=20)
    assert [type(i) for i in iter_archive(upload, "u.tar.gz", limits)] == [ParseFailure]
    with pytest.raises(PayloadTooLarge) as refused:
        scan_archive(upload, "u.tar.gz", limits)
    assert refused.value.code == "archive_too_many_files"
    with pytest.raises(PayloadTooLarge):
        list(stream_archive(upload, "u.tar.gz", limits))
    outcomes = list(parse_upload(upload, "u.tar.gz", limits))
    assert [o.reason for o in outcomes if isinstance(o, ParseFailure)] == [
        FailureReason.ARCHIVE_TOO_MANY_FILES
    ]
    assert len(outcomes) == 1


def test_scan_archive_lists_members_with_their_hashes() -> None:
    upload = _tar_gz([("a.txt", b"alpha"), ("../evil.txt", b"x")])
    entries = scan_archive(upload, "u.tar.gz", IngestLimits())
    assert [e.path for e in entries] == ["a.txt", "../evil.txt"]
    assert entries[0].size == 5
    assert entries[0].sha256 is not None
    assert entries[1].failure is not None


def test_a_member_name_too_long_to_address_fails_alone() -> None:
    upload = _tar_gz([("n" * 3000 + ".txt", b"text"), ("ok.txt", b"fine")])
    items = list(iter_archive(upload, "u.tar.gz", IngestLimits()))
    assert isinstance(items[0], ParseFailure)
    assert items[0].reason is FailureReason.UNSAFE_PATH
    assert len(items[0].source) < 300
    assert not isinstance(items[1], ParseFailure)


# ---------------------------------------------------------------- parse cost


def test_a_pdf_over_its_cpu_budget_fails_too_expensive_and_the_batch_goes_on() -> None:
    bomb = shared_stream_pdf(pages=20, ops=20_000)
    assert len(bomb) < 8_000
    limits = IngestLimits(max_parse_seconds=0.5)
    out = parse_document(bomb, "bomb.pdf", limits)
    assert isinstance(out, ParseFailure)
    assert out.reason is FailureReason.TOO_EXPENSIVE
    ok = parse_document(shared_stream_pdf(pages=1, ops=5), "small.pdf", limits)
    assert isinstance(ok, ExtractedDocument)
