"""Split the candidates into requests within the hub's document and image caps."""

from __future__ import annotations

from collections.abc import Sequence

from core.batching import bounded_batches
from reranker.documents import PreparedDocument

__all__ = ["one_image_document_per_request", "split_requests"]


def split_requests(
    documents: Sequence[PreparedDocument], *, max_documents: int, max_images: int
) -> list[list[int]]:
    """Group document positions into requests of at most ``max_documents`` and ``max_images``.

    Order is kept (so batches stay close to recall order). A single document with more
    images than the cap goes alone: it cannot be split, and the budget already bounds it.
    """
    if max_documents < 1 or max_images < 1:
        raise ValueError("max_documents and max_images must be at least 1")
    images = [document.image_count for document in documents]
    return [
        list(run) for run in bounded_batches(images, max_count=max_documents, max_total=max_images)
    ]


def one_image_document_per_request(
    batch: Sequence[int], documents: Sequence[PreparedDocument], *, max_documents: int
) -> list[list[int]]:
    """Re-split a refused batch: each image document alone, text documents together.

    The fallback of model-api.md for a peer that rejects a mixed image list with a 400.
    """
    text_only = [i for i in batch if documents[i].image_count == 0]
    with_images = [[i] for i in batch if documents[i].image_count > 0]
    texts = [text_only[i : i + max_documents] for i in range(0, len(text_only), max_documents)]
    return texts + with_images
