"""``ChunkFilter`` to the filter models of Qdrant Edge and qdrant-client (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

import numpy as np
import qdrant_edge as edge
from qdrant_client import models

from core.types import AnyOf, ChunkFilter, Condition, FieldEquals, Range

__all__ = ["document_filter", "to_edge_filter", "to_qdrant_filter"]


def document_filter(document_id: str) -> ChunkFilter:
    """The filter that selects every chunk of one document."""
    return ChunkFilter.model_construct(
        must=[FieldEquals.model_construct(key="document_id", kind="eq", value=document_id)]
    )


def _aware(value: float | datetime | None) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError("a datetime range holds only datetimes")
    # Payload datetimes without a zone are read as UTC by Qdrant; say so explicitly.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: float | datetime | None) -> str | None:
    aware = _aware(value)
    return None if aware is None else aware.isoformat()


def _num(value: float | datetime | None) -> float | None:
    if isinstance(value, datetime):
        raise TypeError("a numeric range holds only numbers")
    return value


# ---------------------------------------------------------------- Qdrant Edge


def _edge_match_value(value: str | int | bool) -> edge.MatchValue:
    if isinstance(value, bool):
        # qdrant-edge 0.9 reads a Python bool as the integer 1/0 (bool is an int), so a
        # boolean payload never matches; numpy's bool_ reaches its bool conversion instead.
        return edge.MatchValue(cast("bool", np.bool_(value)))
    return edge.MatchValue(value)


def _edge_condition(cond: Condition) -> edge.FieldCondition:
    if isinstance(cond, FieldEquals):
        return edge.FieldCondition(cond.key, match=_edge_match_value(cond.value))
    if isinstance(cond, AnyOf):
        return edge.FieldCondition(cond.key, match=edge.MatchAny(cond.values))
    if cond.is_datetime:
        dt_range = edge.RangeDateTime(
            gte=_iso(cond.gte), gt=_iso(cond.gt), lte=_iso(cond.lte), lt=_iso(cond.lt)
        )
        return edge.FieldCondition(cond.key, range=dt_range)
    num_range = edge.RangeFloat(
        gte=_num(cond.gte), gt=_num(cond.gt), lte=_num(cond.lte), lt=_num(cond.lt)
    )
    return edge.FieldCondition(cond.key, range=num_range)


def to_edge_filter(chunk_filter: ChunkFilter | None) -> edge.Filter | None:
    """Edge filter for ``chunk_filter`` (None or empty: no filter)."""
    if chunk_filter is None or not chunk_filter.must:
        return None
    return edge.Filter(must=[_edge_condition(c) for c in chunk_filter.must])


# ---------------------------------------------------------------- qdrant-client


def _qdrant_condition(cond: Condition) -> models.FieldCondition:
    if isinstance(cond, FieldEquals):
        return models.FieldCondition(key=cond.key, match=models.MatchValue(value=cond.value))
    if isinstance(cond, AnyOf):
        return models.FieldCondition(key=cond.key, match=models.MatchAny(any=cond.values))
    return models.FieldCondition(key=cond.key, range=_qdrant_range(cond))


def _qdrant_range(cond: Range) -> models.Range | models.DatetimeRange:
    if cond.is_datetime:
        return models.DatetimeRange(
            gte=_aware(cond.gte), gt=_aware(cond.gt), lte=_aware(cond.lte), lt=_aware(cond.lt)
        )
    return models.Range(gte=_num(cond.gte), gt=_num(cond.gt), lte=_num(cond.lte), lt=_num(cond.lt))


def to_qdrant_filter(chunk_filter: ChunkFilter | None) -> models.Filter | None:
    """qdrant-client filter for ``chunk_filter`` (None or empty: no filter)."""
    if chunk_filter is None or not chunk_filter.must:
        return None
    return models.Filter(must=[_qdrant_condition(c) for c in chunk_filter.must])
