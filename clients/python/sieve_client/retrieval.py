"""What both retrievers share: the query knobs and a hit's metadata (pure)."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sieve_client.models import QueryFilter, QueryHit, QueryMode, QueryResponse

__all__ = ["QueryKnobs", "hit_metadata", "refuse_unknown_keywords"]


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


def refuse_unknown_keywords(owner: str, given: Collection[str], known: Collection[str]) -> None:
    """Raise ``TypeError`` naming every keyword ``owner`` does not take (and a close match),
    so a typo such as ``url=`` for ``api_url=`` fails loudly instead of being ignored."""
    unknown = sorted(set(given) - set(known))
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.5)
        hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    raise TypeError(
        f"{owner} got unexpected keyword argument(s) {', '.join(hints)}; "
        f"it takes: {', '.join(sorted(known))}"
    )


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
