"""What both retrievers share: the query knobs and a hit's metadata (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sieve_client.models import QueryFilter, QueryHit, QueryMode, QueryResponse

__all__ = ["QueryKnobs", "hit_metadata"]


@dataclass(frozen=True)
class QueryKnobs:
    """The query parameters a retriever sends with every question."""

    collection: str | Sequence[str]
    top_n: int | None = None
    top_k: int | None = None
    min_score: float | None = None
    filter: QueryFilter | Mapping[str, Any] | None = None
    mode: QueryMode | str = QueryMode.HYBRID
    rerank: bool = True
    rerank_model: str | None = None
    final: str | None = None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``SieveClient.query`` (after the collection and the text)."""
        return {
            "top_n": self.top_n,
            "top_k": self.top_k,
            "min_score": self.min_score,
            "filter": self.filter,
            "mode": self.mode,
            "rerank": self.rerank,
            "rerank_model": self.rerank_model,
            "final": self.final,
        }


def hit_metadata(hit: QueryHit, response: QueryResponse) -> dict[str, Any]:
    """Provenance, every stage's score and the rerank status of one hit, as flat metadata.

    The document's own metadata stays under ``metadata`` so its keys never shadow these.
    """
    return {
        "collection": hit.collection,
        "document_id": hit.document_id,
        "chunk_id": hit.chunk_id,
        "rank": hit.rank,
        "title": hit.title,
        "source": hit.source,
        "page": hit.page,
        "char_start": hit.char_start,
        "char_end": hit.char_end,
        "score": hit.scores.final,
        "scores": hit.scores.model_dump(),
        "rerank_status": response.rerank.status,
        "rerank_model": response.rerank.model,
        "metadata": dict(hit.metadata),
    }
