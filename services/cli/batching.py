"""What ``sieve ingest`` sends: the files of a folder, and batches bounded by count and bytes
(pure, no network), so a 1 GB folder never becomes one request."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from core.batching import bounded_batches

__all__ = [
    "FileEntry",
    "SourceKind",
    "batch_by_size",
    "classify",
    "jsonl_batches",
    "walk_directory",
]

_T = TypeVar("_T")
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
# OS litter the server would skip inside an archive too.
_JUNK_NAMES = frozenset({"Thumbs.db", "desktop.ini", "__MACOSX"})


class SourceKind(StrEnum):
    """How a path given to ``sieve ingest`` is sent."""

    DIRECTORY = "directory"  # every file, multipart, in batches
    JSONL = "jsonl"  # BEIR JSON lines, application/x-ndjson, in batches of lines
    FILE = "file"  # one document or one archive (the server expands it)


@dataclass(frozen=True)
class FileEntry:
    """A file to upload: its path on disk, its name on the server (the document id), size."""

    path: Path
    name: str
    size: int


def classify(path: Path) -> SourceKind:
    """Decide how ``path`` is sent."""
    if path.is_dir():
        return SourceKind.DIRECTORY
    if path.name.lower().endswith(_JSONL_SUFFIXES):
        return SourceKind.JSONL
    return SourceKind.FILE


def _skipped(name: str) -> bool:
    return name.startswith(".") or name in _JUNK_NAMES


def walk_directory(root: Path) -> list[FileEntry]:
    """Every regular file under ``root``, hidden files and folders skipped, sorted by name.

    Names are POSIX paths relative to ``root``, so the same folder gives the same document
    ids from any working directory, and the server's content hash finds unchanged ones.
    """
    entries: list[FileEntry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _skipped(d))
        base = Path(dirpath)
        for filename in sorted(filenames):
            path = base / filename
            if _skipped(filename) or not path.is_file():
                continue
            name = path.relative_to(root).as_posix()
            entries.append(FileEntry(path=path, name=name, size=path.stat().st_size))
    entries.sort(key=lambda e: e.name)
    return entries


def batch_by_size(
    items: Sequence[_T], size: Callable[[_T], int], *, max_count: int, max_bytes: int
) -> list[list[_T]]:
    """Greedy batches in order: at most ``max_count`` items and ``max_bytes`` bytes each.

    An item larger than ``max_bytes`` travels alone (the server decides whether it fits).
    """
    runs = bounded_batches([size(item) for item in items], max_count=max_count, max_total=max_bytes)
    return [[items[i] for i in run] for run in runs]


def jsonl_batches(
    lines: Iterable[bytes], *, max_lines: int, max_bytes: int
) -> Iterator[tuple[bytes, int]]:
    """Join JSON lines into request bodies of at most ``max_lines`` lines and about
    ``max_bytes`` bytes; blank lines are dropped. Yields ``(body, bytes consumed)``.

    Lazy, so a large corpus file is never held in memory at once.
    """
    if max_lines < 1 or max_bytes < 1:
        raise ValueError("max_lines and max_bytes must be positive")
    current: list[bytes] = []
    size = consumed = 0
    for raw in lines:
        consumed += len(raw)
        line = raw.strip()
        if not line:
            continue
        if current and (len(current) >= max_lines or size + len(line) + 1 > max_bytes):
            yield b"\n".join(current), consumed - len(raw)
            current, size, consumed = [], 0, len(raw)
        current.append(line)
        size += len(line) + 1
    if current:
        yield b"\n".join(current), consumed
