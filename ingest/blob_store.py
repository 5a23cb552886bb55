"""Where uploads live before and while they are indexed: named by content, written atomically."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from core.errors import NotFound

__all__ = ["BlobStore", "LocalBlobStore"]


class BlobStore(Protocol):
    """Content-addressed storage; an S3-style store can implement the same three calls."""

    def put(self, data: bytes) -> str:
        """Store ``data``; return its key (the sha256 hex)."""
        ...

    def get(self, key: str) -> bytes:
        """Return the bytes under ``key``; ``NotFound`` if absent."""
        ...

    def exists(self, key: str) -> bool:
        """True when ``key`` is stored."""
        ...


class LocalBlobStore:
    """A directory of blobs, fanned out by hash prefix."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise NotFound(f"no blob {key[:80]!r}", code="blob_not_found")
        return self.root / key[:2] / key

    def put(self, data: bytes) -> str:
        """Store ``data`` durably (fsync, then rename) before anyone is told it exists."""
        key = hashlib.sha256(data).hexdigest()
        path = self._path(key)
        if path.exists():
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

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
