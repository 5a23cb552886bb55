"""The collection layout both chunk stores share: vector names, payload indexes, payloads."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from core.errors import InvalidInput
from core.types import (
    ChunkPayload,
    ChunkPoint,
    HybridQuery,
    ImageRef,
    MultiVector,
    QueryMode,
    ScoredHit,
    StoreCollectionSpec,
)
from retriever.multivector import LATE_VECTOR, pack_rows, unpack

if TYPE_CHECKING:
    from retriever.fusion import FusedHit

__all__ = [
    "DENSE_VECTOR",
    "LATE_VECTOR",
    "PAYLOAD_INDEXES",
    "SPARSE_VECTOR",
    "IndexKind",
    "PayloadIndex",
    "canonical_id",
    "check_points",
    "check_query",
    "dense_list",
    "late_from_stored",
    "late_mean_tokens",
    "late_rows",
    "payload_from_stored",
    "payload_to_stored",
    "scored_hits",
    "trusted",
    "trusted_builder",
]

DENSE_VECTOR = "dense"
SPARSE_VECTOR = "bm25"


class IndexKind(StrEnum):
    """Payload index types the layout uses."""

    KEYWORD = "keyword"
    INTEGER = "integer"


@dataclass(frozen=True, slots=True)
class PayloadIndex:
    """One payload index; HNSW payload links stay off (they made a 100k build 10x slower)."""

    field: str
    kind: IndexKind
    is_tenant: bool = False


PAYLOAD_INDEXES: tuple[PayloadIndex, ...] = (
    # Chunks are read, replaced and deleted per document: group them on disk by it.
    PayloadIndex("document_id", IndexKind.KEYWORD, is_tenant=True),
    PayloadIndex("source", IndexKind.KEYWORD),
    PayloadIndex("content_hash", IndexKind.KEYWORD),
    PayloadIndex("chunk_no", IndexKind.INTEGER),
    PayloadIndex("page", IndexKind.INTEGER),
)

_SIMPLE = (str, int, float, bool, type(None))
_PAYLOAD_FIELDS = frozenset(ChunkPayload.model_fields)
_M = TypeVar("_M", bound=BaseModel)
_FIELDS_SETS: dict[type[BaseModel], set[str]] = {}
_set_attr = object.__setattr__


def trusted(cls: type[_M], values: dict[str, Any]) -> _M:
    """Build ``cls`` from values this package produced, without validation.

    What ``model_construct`` does, minus its per-field default handling: about 0.5 us
    instead of 2.6 us per model, with three models per hit it was most of the adapters'
    query overhead. ``values`` must hold every field of ``cls``;
    tests/retriever/test_layout.py pins the behaviour against validated models.
    """
    fields_set = _FIELDS_SETS.get(cls)
    if fields_set is None:
        # Shared per class: frozen models never change it, and model_copy copies it first.
        fields_set = _FIELDS_SETS[cls] = set(cls.model_fields)
    model = cls.__new__(cls)
    _set_attr(model, "__dict__", values)
    _set_attr(model, "__pydantic_fields_set__", fields_set)
    _set_attr(model, "__pydantic_extra__", None)
    _set_attr(model, "__pydantic_private__", None)
    return model


def trusted_builder(cls: type[_M]) -> Callable[[dict[str, Any]], _M]:
    """``trusted`` bound to one class once, for loops that build many (~0.4 us a model)."""
    fields_set = _FIELDS_SETS.get(cls)
    if fields_set is None:
        fields_set = _FIELDS_SETS[cls] = set(cls.model_fields)
    new = cls.__new__

    def build(values: dict[str, Any]) -> _M:
        model = new(cls)
        _set_attr(model, "__dict__", values)
        _set_attr(model, "__pydantic_fields_set__", fields_set)
        _set_attr(model, "__pydantic_extra__", None)
        _set_attr(model, "__pydantic_private__", None)
        return model

    return build


_chunk_payload = trusted_builder(ChunkPayload)


def payload_to_stored(payload: ChunkPayload) -> dict[str, Any]:
    """The JSON payload stored with a point (datetimes in metadata become ISO strings)."""
    metadata = payload.metadata
    # Hot path on upsert: skip the JSON conversion when metadata is already plain JSON.
    if not all(isinstance(v, _SIMPLE) for v in metadata.values()):
        metadata = to_jsonable_python(metadata)
    return {
        "document_id": payload.document_id,
        "content_hash": payload.content_hash,
        "chunk_no": payload.chunk_no,
        "text": payload.text,
        "title": payload.title,
        "source": payload.source,
        "page": payload.page,
        "char_start": payload.char_start,
        "char_end": payload.char_end,
        "metadata": metadata,
        "image": None if payload.image is None else payload.image.model_dump(),
    }


def payload_from_stored(stored: dict[str, Any] | None) -> ChunkPayload:
    """A ``ChunkPayload`` from a stored payload this layout wrote (trusted: not re-validated)."""
    if not stored:
        raise InvalidInput("a stored point has no chunk payload")
    image = stored.get("image")
    if isinstance(image, dict):
        stored = {**stored, "image": ImageRef.model_construct(**image)}
    if stored.keys() == _PAYLOAD_FIELDS:
        return _chunk_payload(stored)
    return ChunkPayload.model_construct(**stored)  # written by someone else: fill defaults


def dense_list(vector: object) -> list[float]:
    """A stored dense vector as a list (empty if the engine returned none)."""
    return [float(x) for x in vector] if isinstance(vector, list) else []


def late_rows(vector: MultiVector) -> list[list[float]]:
    """A multivector as the list of float rows both engines take."""
    rows: list[list[float]] = unpack(vector).tolist()
    return rows


def late_from_stored(vector: object) -> MultiVector | None:
    """A stored multivector (list of rows) packed again; None if the engine returned none."""
    if isinstance(vector, list) and vector and isinstance(vector[0], list):
        return pack_rows(vector)
    return None


def late_mean_tokens(vectors: Sequence[object]) -> float | None:
    """Mean rows per stored multivector (each a list of rows); None when there are none."""
    counts = [len(v) for v in vectors if isinstance(v, list) and v]
    return sum(counts) / len(counts) if counts else None


def scored_hits(
    fused: Sequence[FusedHit], payload_of: Callable[[str], dict[str, Any] | None]
) -> list[ScoredHit]:
    """Attach payloads to fused hits; ``payload_of`` is asked only for the hits returned."""
    return [
        trusted(
            ScoredHit,
            {
                "id": hit.id,
                "score": hit.score,
                "scores": hit.scores,
                "payload": payload_from_stored(payload_of(hit.id)),
            },
        )
        for hit in fused
    ]


def canonical_id(point_id: str) -> str:
    """The canonical UUID string of a point id; both engines accept only UUIDs here.

    Raises:
        InvalidInput: the id is not a UUID.
    """
    try:
        return str(uuid.UUID(point_id))
    except ValueError as exc:
        raise InvalidInput(f"point id {point_id!r} is not a UUID") from exc


def check_points(spec: StoreCollectionSpec, points: Sequence[ChunkPoint]) -> None:
    """Refuse points that do not fit the collection before they reach the engine.

    Raises:
        InvalidInput: wrong dense size, or a sparse vector without a sparse index.
    """
    for point in points:
        if len(point.dense) != spec.dense_size:
            raise InvalidInput(
                f"point {point.id}: dense vector has {len(point.dense)} dimensions, "
                f"collection {spec.name!r} expects {spec.dense_size}"
            )
        if point.sparse is not None and not spec.sparse:
            raise InvalidInput(f"collection {spec.name!r} has no sparse vectors")
        _check_late(spec, point.late, f"point {point.id}: token vectors")


def check_query(spec: StoreCollectionSpec, query: HybridQuery) -> None:
    """Refuse a query that does not fit the collection.

    Raises:
        InvalidInput: wrong dense size, or a sparse leg on a collection without one.
    """
    dense = query.dense if query.mode is not QueryMode.SPARSE else None
    if dense is not None and len(dense) != spec.dense_size:
        raise InvalidInput(
            f"query vector has {len(dense)} dimensions, "
            f"collection {spec.name!r} expects {spec.dense_size}"
        )
    if query.mode is not QueryMode.DENSE and not spec.sparse:
        raise InvalidInput(f"collection {spec.name!r} has no sparse vectors to query")
    _check_late(spec, query.late, "query token vectors")


def _check_late(spec: StoreCollectionSpec, late: MultiVector | None, what: str) -> None:
    if late is None:
        return
    if spec.late_size is None:
        raise InvalidInput(f"collection {spec.name!r} has no late interaction (token vectors)")
    if late.dim != spec.late_size:
        raise InvalidInput(
            f"{what} have {late.dim} dimensions, collection {spec.name!r} expects {spec.late_size}"
        )
