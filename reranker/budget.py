"""Fit each (query, document) pair into the model's context: text by tokens, images by formula."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import ceil

from reranker.documents import PreparedDocument
from reranker.images import PreparedImage

__all__ = [
    "PairBudget",
    "TokenCounter",
    "estimate_tokens",
    "fit_document",
    "fit_query",
    "fit_query_strictly",
    "truncate_to_tokens",
]

TokenCounter = Callable[[str], int]
"""Counts the tokens of a text for the rerank model (e.g. a ``tokenizers`` tokenizer)."""


def estimate_tokens(text: str) -> int:
    """Estimate tokens without a tokenizer: one per 3 UTF-8 bytes, rounded up.

    Deliberately pessimistic: English runs about 4 characters per token, and a CJK
    character (3 bytes) is about one token, so this rarely under-counts.
    """
    return ceil(len(text.encode("utf-8")) / 3)


def truncate_to_tokens(text: str, max_tokens: int, count: TokenCounter = estimate_tokens) -> str:
    """Return the longest prefix of ``text`` that ``count`` puts at ``max_tokens`` or fewer."""
    if max_tokens <= 0:
        return ""
    if count(text) <= max_tokens:
        return text
    # Binary search on the prefix length: works with any counter, O(log n) calls.
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    prefix = text[:lo]
    # Prefer not to end mid-word when a word boundary is close.
    cut = prefix.rfind(" ")
    if cut >= lo * 0.9:
        prefix = prefix[:cut]
    return prefix.rstrip()


@dataclass(frozen=True, slots=True)
class PairBudget:
    """The model's context per (query, document) pair and what the prompt costs around them.

    ``max_query_share`` caps the query so that a long query cannot starve every document.
    ``max_document_tokens`` caps each document's text on the client (IONOS documents no
    ``max_tokens_per_doc``): the cost of a cross-encoder pair grows with its length.
    ``model_context_tokens`` is the model's own pair context when its hub states it
    (``max_model_len`` in ``/v1/models``; a 512-token cross-encoder, say): the query's share
    is taken of it, so a long query is cut instead of refused. Documents keep their caps:
    the hub cuts each pair to the model with its exact tokenizer.
    """

    context_tokens: int = 32_768
    overhead_tokens: int = 200
    max_query_share: float = 0.5
    max_document_tokens: int | None = None
    model_context_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.context_tokens <= self.overhead_tokens:
            raise ValueError("the pair context must be larger than the prompt overhead")
        if self.max_document_tokens is not None and self.max_document_tokens < 1:
            raise ValueError("max_document_tokens must be at least 1")
        if not 0 < self.max_query_share < 1:
            raise ValueError("max_query_share must be between 0 and 1")
        if self.model_context_tokens is not None and self.model_context_tokens < 2:
            raise ValueError("model_context_tokens must be at least 2")

    @property
    def available(self) -> int:
        """Tokens left for query and document once the prompt overhead is paid."""
        return self.context_tokens - self.overhead_tokens

    @property
    def query_tokens(self) -> int:
        """The most tokens the query may take: its share of the pair (the model's, if known)."""
        room = self.available
        if self.model_context_tokens is not None:
            room = min(room, self.model_context_tokens)
        return int(room * self.max_query_share)


def fit_query(
    query: str, budget: PairBudget, count: TokenCounter = estimate_tokens
) -> tuple[str, int]:
    """Truncate the query to its share of the pair budget; return it and its token count."""
    fitted = truncate_to_tokens(query, budget.query_tokens, count)
    return fitted, count(fitted) if fitted else 0


def fit_query_strictly(query: str, budget: PairBudget) -> str:
    """The query's head within its share counted as one token per UTF-8 byte.

    No WordPiece or byte-level BPE tokenizer makes more tokens than bytes, so this fits
    any model's share; the estimate's 3 bytes a token can under-count symbol-dense text.
    """
    return truncate_to_tokens(query, budget.query_tokens, lambda text: len(text.encode("utf-8")))


def fit_document(
    text: str,
    images: Sequence[PreparedImage],
    *,
    query_tokens: int,
    budget: PairBudget,
    count: TokenCounter = estimate_tokens,
) -> PreparedDocument:
    """Fit one document next to the query: keep images while they fit, then truncate the text.

    Images are kept in order and the ones that do not fit are dropped (and counted), since
    an image cannot be cut; the text gets whatever remains.
    """
    room = budget.available - query_tokens
    kept: list[PreparedImage] = []
    image_tokens = 0
    for image in images:
        if image_tokens + image.tokens > room:
            break
        kept.append(image)
        image_tokens += image.tokens
    text_room = room - image_tokens
    if budget.max_document_tokens is not None:
        text_room = min(text_room, budget.max_document_tokens)
    fitted = truncate_to_tokens(text, text_room, count)
    return PreparedDocument(
        text=fitted,
        image_uris=tuple(image.data_uri for image in kept),
        image_tokens=image_tokens,
        text_truncated=fitted != text,
        images_dropped=len(images) - len(kept),
    )
