"""Where uploads live before and while they are indexed: named by content, written atomically."""

from __future__ import annotations

import ctypes
import hashlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, cast

from core.errors import NotFound

__all__ = ["BlobStore", "LocalBlobStore", "blob_key"]


def _load_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return cast(Callable[[int], int], fn)


_SYNCFS = _load_syncfs()


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable too."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore(Protocol):
    """Content-addressed storage; an S3-style store can implement the same calls."""

    def put(self, data: bytes) -> str:
        """Store ``data``; return its key (the sha256 hex)."""
        ...

    def put_many(self, datas: Sequence[bytes]) -> list[str]:
        """Store several blobs durably at once; return their keys in order."""
        ...

    def get(self, key: str) -> bytes:
        """Return the bytes under ``key``; ``NotFound`` if absent."""
        ...

    def exists(self, key: str) -> bool:
        """True when ``key`` is stored."""
        ...

    def keys(self) -> Iterator[str]:
        """Every stored key (for the retention sweep)."""
        ...

    def delete(self, key: str) -> None:
        """Remove a blob (nothing when it is not there)."""
        ...


def blob_key(data: bytes) -> str:
    """The key ``data`` is stored under: its sha256, hex."""
    return hashlib.sha256(data).hexdigest()


_HEX = frozenset("0123456789abcdef")


def _is_key(name: str) -> bool:
    return len(name) == 64 and not set(name) - _HEX


class LocalBlobStore:
    """A directory of blobs, fanned out by hash prefix.

    ``before_write`` is told the keys of every ``put`` before a file is looked at or written:
    the retention sweep's pin (``indexing.blob_gc``), so a blob being deleted as dead is
    written again rather than reused by an upload of the same content.
    """

    def __init__(
        self, root: Path, *, before_write: Callable[[Sequence[str]], None] | None = None
    ) -> None:
        self.root = root
        self._before_write = before_write
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise NotFound(f"no blob {key[:80]!r}", code="blob_not_found")
        return self.root / key[:2] / key

    def put(self, data: bytes) -> str:
        """Store ``data`` durably (fsync, then rename) before anyone is told it exists."""
        key = blob_key(data)
        if self._before_write is not None:
            self._before_write([key])
        fresh = self._write(key, data, sync=True)
        if fresh:
            _fsync_dir(self._path(key).parent)
        return key

    def put_many(self, datas: Sequence[bytes]) -> list[str]:
        """Store blobs durably with one file-system sync for all of them, not one each.

        A 10,000-member archive cost one fsync per member on the request path (~40 s);
        ``syncfs`` flushes the data and the renames of the whole batch in one call.
        """
        if _SYNCFS is None:
            return [self.put(d) for d in datas]
        keys = [blob_key(d) for d in datas]
        if self._before_write is not None and keys:
            self._before_write(keys)
        for key, data in zip(keys, datas, strict=True):
            self._write(key, data, sync=False)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _SYNCFS(fd) != 0:
                raise OSError(ctypes.get_errno(), "syncfs failed")
        finally:
            os.close(fd)
        return keys

    def _write(self, key: str, data: bytes, *, sync: bool) -> bool:
        path = self._path(key)
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                if sync:
                    os.fsync(fh.fileno())
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return True

    def get(self, key: str) -> bytes:
        """Return the blob's bytes."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"no blob {key}", code="blob_not_found") from exc

    def exists(self, key: str) -> bool:
        """True when the blob is stored."""
        try:
            return self._path(key).exists()
        except NotFound:
            return False

    def keys(self) -> Iterator[str]:
        """Every stored key (temporary files and anything not named by a key are skipped)."""
        for fan in os.scandir(self.root):
            if not fan.is_dir(follow_symlinks=False) or len(fan.name) != 2:
                continue
            for entry in os.scandir(fan.path):
                if _is_key(entry.name) and entry.name.startswith(fan.name):
                    yield entry.name

    def delete(self, key: str) -> None:
        """Remove a blob (nothing when it is not there)."""
        self._path(key).unlink(missing_ok=True)
