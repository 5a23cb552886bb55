"""What ``sieve ingest`` sends: folder walking and batches bounded by count and bytes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from services.cli.batching import (
    SourceKind,
    batch_by_size,
    classify,
    jsonl_batches,
    walk_directory,
)


def test_walk_skips_hidden_files_and_folders_and_names_relative_to_root(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "sub" / "b.md").write_text("bb")
    (tmp_path / "sub" / "deeper" / "c.html").write_text("ccc")
    (tmp_path / ".env").write_text("secret")
    (tmp_path / ".git" / "config").write_text("x")
    (tmp_path / "sub" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "Thumbs.db").write_bytes(b"\0")
    (tmp_path / "empty.txt").write_bytes(b"")

    entries = walk_directory(tmp_path)

    assert [(e.name, e.size) for e in entries] == [
        ("a.txt", 1),
        ("empty.txt", 0),
        ("sub/b.md", 2),
        ("sub/deeper/c.html", 3),
    ]
    assert entries[2].path == tmp_path / "sub" / "b.md"


def test_the_same_folder_gives_the_same_names_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "x.txt").write_text("x")
    absolute = [e.name for e in walk_directory(tmp_path / "kb")]
    monkeypatch.chdir(tmp_path)
    assert [e.name for e in walk_directory(Path("kb"))] == absolute == ["x.txt"]


def test_classify(tmp_path: Path) -> None:
    (tmp_path / "c.JSONL").write_text("{}")
    (tmp_path / "c.ndjson").write_text("{}")
    (tmp_path / "kb.zip").write_bytes(b"PK")
    assert classify(tmp_path) is SourceKind.DIRECTORY
    assert classify(tmp_path / "c.JSONL") is SourceKind.JSONL
    assert classify(tmp_path / "c.ndjson") is SourceKind.JSONL
    assert classify(tmp_path / "kb.zip") is SourceKind.FILE


def test_batches_respect_count_and_bytes_in_order() -> None:
    sizes = [10, 10, 10, 10, 10, 10, 10]
    by_count = batch_by_size(sizes, lambda n: n, max_count=3, max_bytes=1000)
    assert by_count == [[10, 10, 10], [10, 10, 10], [10]]
    by_bytes = batch_by_size(sizes, lambda n: n, max_count=100, max_bytes=25)
    assert by_bytes == [[10, 10], [10, 10], [10, 10], [10]]


def test_an_item_larger_than_the_byte_bound_travels_alone() -> None:
    assert batch_by_size([5, 100, 5, 5], lambda n: n, max_count=10, max_bytes=20) == [
        [5],
        [100],
        [5, 5],
    ]


def test_a_large_folder_never_becomes_one_request() -> None:
    sizes = [3 * 1024 * 1024] * 400  # 1.2 GB
    batches = batch_by_size(sizes, lambda n: n, max_count=200, max_bytes=32 * 1024 * 1024)
    assert sum(len(b) for b in batches) == 400
    assert all(sum(b) <= 32 * 1024 * 1024 and len(b) <= 200 for b in batches)


def test_empty_input_and_bad_bounds() -> None:
    assert batch_by_size([], lambda n: n, max_count=1, max_bytes=1) == []
    with pytest.raises(ValueError, match="positive"):
        batch_by_size([1], lambda n: n, max_count=0, max_bytes=1)
    with pytest.raises(ValueError, match="positive"):
        list(jsonl_batches([], max_lines=1, max_bytes=0))


def test_jsonl_batches_bound_lines_drop_blanks_and_account_for_every_byte() -> None:
    raw = b'{"_id": "1"}\n\n{"_id": "2"}\n   \n{"_id": "3"}\n{"_id": "4"}\n{"_id": "5"}\n\n'
    out = list(jsonl_batches(io.BytesIO(raw), max_lines=2, max_bytes=10_000))
    bodies = [body for body, _ in out]
    assert bodies == [
        b'{"_id": "1"}\n{"_id": "2"}',
        b'{"_id": "3"}\n{"_id": "4"}',
        b'{"_id": "5"}',
    ]
    assert sum(consumed for _, consumed in out) == len(raw)


def test_jsonl_batches_bound_bytes() -> None:
    lines = [b'{"_id": "%d", "text": "%s"}\n' % (i, b"x" * 50) for i in range(10)]
    out = list(jsonl_batches(lines, max_lines=1000, max_bytes=150))
    assert all(len(body) <= 150 for body, _ in out)
    assert sum(body.count(b"\n") + 1 for body, _ in out) == 10


def test_only_blank_lines_give_no_batch() -> None:
    assert list(jsonl_batches([b"\n", b"  \n"], max_lines=5, max_bytes=100)) == []
