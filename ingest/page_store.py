"""Page images as stored at ingest: one blob per page, listed by a manifest blob.

The worker derives each page image once, while it parses (``ingest.page_images``), and
stores it beside the upload in the blob store; the document record keeps the key of a
small manifest naming them. Readers (the image route, the reranker's image source) only
read these bytes: this module knows no image library, so nothing that imports it decodes.
"""

from __future__ import annotations

import json
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import NotFound

__all__ = [
    "MANIFEST_VERSION",
    "PageImageManifest",
    "PageImageSink",
    "StoredPage",
    "read_manifest",
]

MANIFEST_VERSION = 1
# The image types a stored page may have (what browsers and multimodal rerankers take).
_MIMES = r"^image/(png|jpeg|gif|webp)$"


class PageImageSink(Protocol):
    """Where the worker puts derived page images (the blob store's ``put``)."""

    def put(self, data: bytes) -> str:
        """Store ``data`` durably; return its key."""
        ...


class StoredPage(BaseModel):
    """One stored page image: its blob key (the bytes' sha256), type and size in pixels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    mime: Annotated[str, Field(pattern=_MIMES)]
    width: Annotated[int, Field(gt=0)]
    height: Annotated[int, Field(gt=0)]
    size: Annotated[int, Field(ge=0)]


class PageImageManifest(BaseModel):
    """The page images derived from one upload (``source``: its sha256), by page number."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = MANIFEST_VERSION
    source: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    pages: dict[int, StoredPage] = Field(default_factory=dict)

    def encode(self) -> bytes:
        """The manifest as stored (canonical JSON: the same pages give the same key)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()


class _Blobs(Protocol):
    def get(self, key: str) -> bytes: ...


def read_manifest(blobs: _Blobs, key: str) -> PageImageManifest:
    """The manifest stored under ``key``.

    Raises:
        NotFound: it is missing or unreadable (code ``image_not_derived``).
    """
    try:
        return PageImageManifest.model_validate_json(blobs.get(key))
    except (NotFound, ValidationError) as exc:
        raise NotFound(
            "the page images of this document are missing; upload it again to derive them",
            code="image_not_derived",
        ) from exc
