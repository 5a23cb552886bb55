"""A collection's query policy: recall fusion, rerank depth, final order and autocut.

Stored on the collection (``sieve tune --apply`` or ``PUT /v1/collections/{c}/policy``);
every field left None falls back to the server's settings. A request's own fields win
over the policy.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FinalPolicy", "QueryPolicy"]

FinalPolicy = Literal["rerank", "fusion", "window"]


class QueryPolicy(BaseModel):
    """How a collection's queries are ranked; None means "the server's default"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Recall: weighted RRF of the dense and BM25 legs.
    dense_weight: Annotated[float | None, Field(ge=0, le=100)] = None
    sparse_weight: Annotated[float | None, Field(ge=0, le=100)] = None
    rrf_k: Annotated[float | None, Field(gt=0, le=1000)] = None
    # Late interaction (the store's MaxSim rescoring), for collections that have it: its
    # weight as a third RRF leg over the recalled candidates. 0 turns it off.
    late_weight: Annotated[float | None, Field(ge=0, le=100)] = None
    # Rerank: how many recalled candidates go to /rerank (0: no rerank call at all).
    rerank_depth: Annotated[int | None, Field(ge=0, le=500)] = None
    final: FinalPolicy | None = None
    fusion_recall_weight: Annotated[float | None, Field(ge=0, le=100)] = None
    fusion_rerank_weight: Annotated[float | None, Field(ge=0, le=100)] = None
    fusion_k: Annotated[float | None, Field(gt=0, le=1000)] = None
    window: Annotated[int | None, Field(ge=1, le=500)] = None
    # Cut the answer at this many score jumps (Weaviate's autocut); 0 turns it off.
    autocut: Annotated[int | None, Field(ge=0, le=10)] = None
    # Where the policy came from (e.g. ``sieve tune``'s cross-validated score); shown only.
    provenance: dict[str, Any] = Field(default_factory=dict)
