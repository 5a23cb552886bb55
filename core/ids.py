"""Deterministic identifiers: the same chunk always gets the same point id."""

from __future__ import annotations

import hashlib
import uuid
from urllib.parse import quote

__all__ = [
    "MAX_DOCUMENT_ID_CHARS",
    "SIEVE_NAMESPACE",
    "content_sha256",
    "document_id_problem",
    "failed_entry_id",
    "path_segment",
    "point_id",
]

# Ids travel in URL paths (GET/PUT/DELETE /documents/{id}); past a few KiB proxies and
# servers refuse the URL, and the document could never be addressed again.
MAX_DOCUMENT_ID_CHARS = 1024

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


def document_id_problem(doc_id: str) -> str | None:
    """Why ``doc_id`` cannot name a document (None when it can).

    An id is kept exactly as given: one with outer whitespace is refused rather than
    trimmed (``PUT /documents/%20a%20`` must not write ``a``), and so is one with control
    characters, over ``MAX_DOCUMENT_ID_CHARS``, or with an empty, ``.`` or ``..`` segment
    between slashes or backslashes (``a//b``, ``/a``, ``a/./b``, ``../x``, ``..\\x``).
    """
    if not doc_id or not doc_id.strip():
        return "a document id must not be empty"
    if len(doc_id) > MAX_DOCUMENT_ID_CHARS:
        return f"a document id is at most {MAX_DOCUMENT_ID_CHARS} characters"
    if doc_id != doc_id.strip():
        return "a document id must not start or end with whitespace"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in doc_id):
        return "a document id must not hold control characters"
    if any(part in _DOT_SEGMENTS for part in doc_id.replace("\\", "/").split("/")):
        # Browsers and HTTP clients collapse "." and ".." in a URL path (browsers read a
        # backslash as "/", a proxy may merge "//"): /documents/../../victim names another
        # collection.
        return "a document id must not have an empty, '.' or '..' path segment"
    return None


_DOT_SEGMENTS = frozenset({"", ".", ".."})


def failed_entry_id(raw: str) -> str:
    """The id a failed entry is stored under: ``raw`` when it is a legal id, else a safe one.

    A refused name (a zip-slip member ``../x``, an absolute path, a record whose id was
    refused) is kept in the record's ``source``; the id is ``invalid:`` plus a digest of the
    raw name, so re-uploading the same entry replaces its failure rather than adding one.
    """
    if document_id_problem(raw) is None:
        return raw
    return "invalid:" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def path_segment(value: str) -> str:
    """``value`` as one URL path segment no normaliser can turn into another resource.

    Every reserved character is quoted, ``/`` too (the ``{doc_id:path}`` routes decode
    ``%2F`` back), so ``../../victim`` stays one segment; one of dots alone is sent as
    ``%2E``s. ``sieve_client`` and the console encode the same way.
    """
    quoted = quote(value, safe="")
    return "%2E" * len(quoted) if quoted in (".", "..") else quoted
