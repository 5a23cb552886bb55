"""The package's public surface, and the promise that a crashing parser fails one file only."""

from __future__ import annotations

import pytest

import ingest
import ingest.parsers
from ingest import FailureReason, IngestLimits, ParseFailure, parse_upload
from ingest.detect import FileType
from ingest.documents import DocumentKind
from ingest.parsers.assembly import ParsedText
from tests.ingest.samples import make_zip


def test_every_public_name_exists() -> None:
    assert sorted(ingest.__all__) == ingest.__all__
    for name in ingest.__all__:
        assert getattr(ingest, name) is not None, name


def test_a_parser_crash_is_that_files_failure(
    monkeypatch: pytest.MonkeyPatch, limits: IngestLimits
) -> None:
    def exploding(data: bytes, limits: IngestLimits) -> ParsedText:
        raise IndexError("bug in a third-party parser")

    crashing = {**ingest.parsers.PARSERS, FileType.MD: (DocumentKind.MD, exploding)}
    monkeypatch.setattr(ingest.parsers, "PARSERS", crashing)
    upload = make_zip({"a.md": b"# A\n\ntext", "b.txt": b"plain text"})
    outcomes = {o.source: o for o in parse_upload(upload, "u.zip", limits)}
    crashed = outcomes["a.md"]
    assert isinstance(crashed, ParseFailure)
    assert crashed.reason is FailureReason.CORRUPT_FILE
    assert "IndexError" not in crashed.message  # no internals in the user-facing message
    assert not isinstance(outcomes["b.txt"], ParseFailure)
