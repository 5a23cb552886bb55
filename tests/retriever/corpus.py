"""A tiny hand-built corpus whose rankings are known, so the tests can say what must happen."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from core.ids import content_sha256, point_id
from core.types import ChunkPayload, ChunkPoint, HybridQuery, QueryMode, StoreCollectionSpec
from retriever.bm25 import Bm25Encoder, mean_token_length

DIM = 4
COLLECTION = "contract"
SPEC = StoreCollectionSpec(name=COLLECTION, dense_size=DIM)


def unit(*xs: float) -> list[float]:
    """A normalised vector padded to DIM."""
    padded = [*xs, *([0.0] * (DIM - len(xs)))]
    norm = math.sqrt(sum(x * x for x in padded))
    return [x / norm for x in padded]


# The query is "zebra" with dense vector e0.
# dense (cosine to e0): alpha 1.0 > gamma 0.8 > beta 0.3; omega -0.5 (no zebra)
# sparse (BM25 on "zebra"): beta (tf 3, short) > gamma (tf 2) > alpha (tf 1, long)
DOCS: dict[str, tuple[list[float], str, dict[str, Any]]] = {
    "alpha": (
        unit(1.0, 0.0),
        "zebra elephant tiger mouse monkey horse donkey camel",
        {"source": "a.txt", "page": 1, "metadata": {"lang": "en", "year": 2020}},
    ),
    "beta": (
        unit(0.3, math.sqrt(1 - 0.09)),
        "zebra zebra zebra",
        {"source": "b.md", "page": 2, "metadata": {"lang": "de", "year": 2022}},
    ),
    "gamma": (
        unit(0.8, 0.6),
        "zebra zebra giraffe lion",
        {"source": "c.pdf", "page": 3, "metadata": {"lang": "en", "year": 2024}},
    ),
    "omega": (
        unit(-0.5, 0.0, math.sqrt(0.75)),
        "completely unrelated words here",
        {"source": "d.txt", "page": None, "metadata": {"lang": "fr", "year": 2019}},
    ),
}
PUBLISHED = {
    "alpha": datetime(2020, 5, 1, tzinfo=UTC),
    "beta": datetime(2022, 5, 1, tzinfo=UTC),
    "gamma": datetime(2024, 5, 1, tzinfo=UTC),
    "omega": datetime(2019, 5, 1, tzinfo=UTC),
}
ENCODER = Bm25Encoder(avg_len=mean_token_length(text for _, text, _ in DOCS.values()))


def chunk(
    doc: str,
    chunk_no: int,
    text: str,
    dense: list[float],
    collection: str = COLLECTION,
    **payload: Any,
) -> ChunkPoint:
    """One chunk point with a deterministic id and a BM25 vector of ``text``."""
    return ChunkPoint(
        id=point_id(collection, doc, chunk_no),
        dense=dense,
        sparse=ENCODER.embed_documents([text])[0],
        payload=ChunkPayload(
            document_id=doc,
            content_hash=content_sha256(text),
            chunk_no=chunk_no,
            text=text,
            **payload,
        ),
    )


def corpus_points(collection: str = COLLECTION) -> list[ChunkPoint]:
    """The four one-chunk documents above."""
    points = []
    for doc, (dense, text, extra) in DOCS.items():
        metadata = {**extra["metadata"], "published": PUBLISHED[doc], "flag": doc == "gamma"}
        points.append(
            chunk(
                doc,
                0,
                text,
                dense,
                collection,
                source=extra["source"],
                page=extra["page"],
                metadata=metadata,
            )
        )
    return points


def zebra_query(mode: QueryMode = QueryMode.HYBRID, **kwargs: Any) -> HybridQuery:
    """The query every ranking test uses: dense e0, sparse "zebra"."""
    return HybridQuery(dense=unit(1.0), sparse=ENCODER.embed_query("zebra"), mode=mode, **kwargs)
