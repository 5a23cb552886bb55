"""Where uploads live before and while they are indexed: named by content, written atomically."""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, cast

from core.errors import NotFound
from core.files import fsync_path
from core.ids import content_sha256

__all__ = ["BlobStaging", "BlobStore", "LocalBlobStore", "blob_key"]


def _load_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return cast(Callable[[int], int], fn)


_SYNCFS = _load_syncfs()


def _syncfs(root: Path) -> bool:
    """Flush the whole file system under ``root`` (data and renames); False without syncfs."""
    if _SYNCFS is None:
        return False
    fd = os.open(root, os.O_RDONLY)
    try:
        if _SYNCFS(fd) != 0:
            raise OSError(ctypes.get_errno(), "syncfs failed")
    finally:
        os.close(fd)
    return True


class BlobStaging(Protocol):
    """Blobs of one request, written as they are read, visible only once committed.

    An upload's archive members go here one at a time, so the request never holds them
    all; a refused request discards them and leaves nothing behind.
    """

    def put(self, data: bytes) -> str:
        """Stage ``data``; return its key (the sha256 hex)."""
        ...

    def release(self, key: str) -> None:
        """Undo one ``put`` of ``key`` (a refused archive's members)."""
        ...

    def commit(self) -> None:
        """Make every staged blob durable and visible under its key."""
        ...

    def discard(self) -> None:
        """Drop whatever is staged (safe after ``commit`` too)."""
        ...


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

    def staging(self) -> BlobStaging:
        """A new staging area for one request's blobs."""
        ...


def blob_key(data: bytes) -> str:
    """The key ``data`` is stored under: its sha256, hex (``core.ids.content_sha256``)."""
    return content_sha256(data)


_HEX = frozenset("0123456789abcdef")


def _is_key(name: str) -> bool:
    return len(name) == 64 and not set(name) - _HEX


class LocalBlobStore:
    """A directory of blobs, fanned out by hash prefix.

    ``before_write`` is told the keys of every ``put`` (and of every staged blob a commit
    makes visible) before a file is looked at or written: the retention sweep's pin
    (``indexing.blob_gc``), so a blob being deleted as dead is written again rather than
    reused by an upload of the same content.
    """

    # Staging areas a crashed request left behind are removed once this old.
    STALE_STAGING_S = 3600.0

    def __init__(
        self, root: Path, *, before_write: Callable[[Sequence[str]], None] | None = None
    ) -> None:
        self.root = root
        self._before_write = before_write
        root.mkdir(parents=True, exist_ok=True)
        self._staging_root = root / ".staging"
        self._sweep_stale_staging()

    def _sweep_stale_staging(self) -> None:
        if not self._staging_root.is_dir():
            return
        cutoff = time.time() - self.STALE_STAGING_S
        for area in self._staging_root.iterdir():
            try:
                if area.stat().st_mtime < cutoff:
                    shutil.rmtree(area, ignore_errors=True)
            except OSError:
                continue

    def staging(self) -> _LocalStaging:
        """A staging directory under the root (so a commit is a rename on one file system)."""
        return _LocalStaging(self, self._staging_root / uuid.uuid4().hex)

    def _path(self, key: str) -> Path:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise NotFound(f"no blob {key[:80]!r}", code="blob_not_found")
        return self.root / key[:2] / key

    def put(self, data: bytes) -> str:
        """Store ``data`` durably (fsync, then rename) before anyone is told it exists."""
        key = blob_key(data)
        self._pin([key])
        fresh = self._write(key, data, sync=True)
        if fresh:
            fsync_path(self._path(key).parent)
        return key

    def put_many(self, datas: Sequence[bytes]) -> list[str]:
        """Store blobs durably with one file-system sync for all of them, not one each.

        A 10,000-member archive cost one fsync per member on the request path (~40 s);
        ``syncfs`` flushes the data and the renames of the whole batch in one call.
        """
        if _SYNCFS is None:
            return [self.put(d) for d in datas]
        keys = [blob_key(d) for d in datas]
        self._pin(keys)
        for key, data in zip(keys, datas, strict=True):
            self._write(key, data, sync=False)
        _syncfs(self.root)
        return keys

    def _pin(self, keys: Sequence[str]) -> None:
        """Tell ``before_write`` (the retention sweep's pin) before a file is looked at."""
        if self._before_write is not None and keys:
            self._before_write(keys)

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


class _LocalStaging:
    """A request's staged blobs in their own directory; commit renames them into place."""

    def __init__(self, store: LocalBlobStore, area: Path) -> None:
        self._store = store
        self._area = area
        self._refs: Counter[str] = Counter()

    def put(self, data: bytes) -> str:
        """Write ``data`` into the staging directory (once per key); return its key.

        The key is pinned first: a stored blob the retention sweep is deleting is then
        either kept or gone before ``exists`` is asked, never deleted after it said yes.
        """
        key = blob_key(data)
        if self._refs[key] == 0:
            self._store._pin([key])
            if not self._store.exists(key):
                self._area.mkdir(parents=True, exist_ok=True)
                with (self._area / key).open("wb") as fh:
                    fh.write(data)
        self._refs[key] += 1
        return key

    def release(self, key: str) -> None:
        """Forget one ``put`` of ``key``; its staged file goes with the last one."""
        if self._refs[key] <= 0:
            return
        self._refs[key] -= 1
        if self._refs[key] == 0:
            del self._refs[key]
            (self._area / key).unlink(missing_ok=True)

    def commit(self) -> None:
        """Rename each staged blob into place, then make data and renames durable at once."""
        moved: set[Path] = set()
        for key in self._refs:
            staged = self._area / key
            if not staged.exists():
                continue  # already stored when it was staged
            final = self._store._path(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            staged.replace(final)
            moved.add(final.parent)
        if not _syncfs(self._store.root):
            for key in self._refs:
                path = self._store._path(key)
                if path.parent in moved:
                    with path.open("rb") as fh:
                        os.fsync(fh.fileno())
            for parent in moved:
                fsync_path(parent)
        self._refs.clear()
        self.discard()

    def discard(self) -> None:
        """Remove the staging directory and everything still in it."""
        self._refs.clear()
        shutil.rmtree(self._area, ignore_errors=True)
