"""Deterministic identifiers: the same chunk always gets the same point id."""

from __future__ import annotations

import hashlib
import uuid

__all__ = ["SIEVE_NAMESPACE", "content_sha256", "point_id"]

# Fixed forever: changing it would re-key every stored chunk.
SIEVE_NAMESPACE = uuid.UUID("6f0c1d2e-5a4b-5c3d-9e8f-7a6b5c4d3e2f")


def point_id(collection: str, document_id: str, chunk_no: int) -> str:
    """Return the Qdrant point id of chunk ``chunk_no`` of ``document_id`` in ``collection``."""
    if chunk_no < 0:
        raise ValueError("chunk_no must be >= 0")
    return str(uuid.uuid5(SIEVE_NAMESPACE, f"{collection}:{document_id}:{chunk_no}"))


def content_sha256(data: bytes | str) -> str:
    """Return the hex sha256 of ``data`` (text is hashed as UTF-8)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()
