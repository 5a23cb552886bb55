"""Page images for the rerank stage: read from the blob store, sized to the model's budget."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from core.errors import SieveError
from core.ids import path_segment
from core.image_tokens import IMAGE_MAX_PIXELS
from core.types import ImageRef
from ingest.blob_store import BlobStore
from ingest.page_images import page_image

__all__ = ["PageImageSource", "image_url"]

log = logging.getLogger("sieve.api")


def image_url(collection: str, document_id: str, page: int) -> str:
    """The API path of a document's page image (routes_images serves it; hits link to it)."""
    path = f"/v1/collections/{collection}/documents/{path_segment(document_id)}"
    return f"{path}/image?page={page}"


class PageImageSource:
    """Loads the image of a hit's page (a small LRU: hits of one page share it)."""

    def __init__(
        self, blobs: BlobStore, *, max_pixels: int = IMAGE_MAX_PIXELS, cache_size: int = 64
    ) -> None:
        self._blobs = blobs
        self._max_pixels = max_pixels
        self._cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._cache_size = cache_size

    async def load(self, ref: ImageRef) -> bytes | None:
        """The page's image, scaled within 1,310,720 px; None (logged) when unavailable."""
        key = (ref.blob_id, ref.page)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        try:
            data = await asyncio.to_thread(self._render, ref)
        except SieveError as exc:
            # The hit is still reranked, by its OCR text.
            log.warning("page image unavailable", extra={"page": ref.page, "reason": exc.code})
            return None
        self._cache[key] = data
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return data

    def _render(self, ref: ImageRef) -> bytes:
        return page_image(self._blobs.get(ref.blob_id), ref.page, max_pixels=self._max_pixels).data
