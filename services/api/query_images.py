"""Page images for the rerank stage: the bytes stored at ingest, read from the blob store.

The same bytes the image route serves (``ImageRef.blob_id`` is the stored page's key);
the reranker sizes them to the model's budget (``reranker.images``). Nothing is rendered
here: a chunk indexed before page images were stored (no ``mime``) goes as text.
"""

from __future__ import annotations

import asyncio
import logging

from core.errors import SieveError
from core.ids import path_segment
from core.types import ImageRef
from ingest.blob_store import BlobStore

__all__ = ["PageImageSource", "image_url"]

log = logging.getLogger("sieve.api")


def image_url(collection: str, document_id: str, page: int) -> str:
    """The API path of a document's page image (routes_images serves it; hits link to it)."""
    path = f"/v1/collections/{collection}/documents/{path_segment(document_id)}"
    return f"{path}/image?page={page}"


class PageImageSource:
    """Loads the image of a hit's page: a file read (the OS caches what is read often)."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    async def load(self, ref: ImageRef) -> bytes | None:
        """The page's image as stored at ingest; None when there is none (a missing blob
        is logged): the hit is then reranked by its OCR text."""
        if ref.mime is None:
            return None
        try:
            return await asyncio.to_thread(self._blobs.get, ref.blob_id)
        except SieveError as exc:
            log.warning("page image unavailable", extra={"page": ref.page, "reason": exc.code})
            return None
