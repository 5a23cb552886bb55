"""What the caller hands the reranker, and the wire-ready form after budgeting."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PreparedDocument", "RerankDocument"]


@dataclass(frozen=True, slots=True)
class RerankDocument:
    """One candidate to score: its text and, for image documents, the encoded image bytes."""

    text: str = ""
    images: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A document fitted to the model's pair budget, ready to go on the wire.

    ``image_uris`` are ``data:`` URIs of images already resized to the formula's size.
    """

    text: str
    image_uris: tuple[str, ...] = ()
    image_tokens: int = 0
    text_truncated: bool = False
    images_dropped: int = 0

    @property
    def image_count(self) -> int:
        """How many images this document sends."""
        return len(self.image_uris)
