"""The store layout's payload conversion and the unvalidated fast constructor."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from core.types import ChunkPayload, LegScores, ScoredHit
from retriever.layout import payload_from_stored, payload_to_stored, trusted


def _payload() -> ChunkPayload:
    return ChunkPayload(
        document_id="d",
        content_hash="h",
        chunk_no=2,
        text="t",
        page=1,
        metadata={"lang": "en", "at": datetime(2024, 1, 2, tzinfo=UTC)},
    )


def test_payload_round_trip_is_json() -> None:
    stored = payload_to_stored(_payload())
    assert stored["metadata"] == {"lang": "en", "at": "2024-01-02T00:00:00Z"}
    back = payload_from_stored(stored)
    assert back == ChunkPayload.model_validate(stored)
    assert back.model_dump() == ChunkPayload.model_validate(stored).model_dump()


def test_foreign_payload_gets_defaults() -> None:
    back = payload_from_stored(
        {"document_id": "d", "content_hash": "h", "chunk_no": 0, "text": "x"}
    )
    assert back.metadata == {}
    assert back.page is None


def test_trusted_models_behave_like_validated_ones() -> None:
    values = {"dense": 0.5, "dense_rank": 1, "sparse": None, "sparse_rank": None, "fused": 0.1}
    values["late"] = None
    fast = trusted(LegScores, dict(values))
    slow = LegScores.model_validate(values)
    assert fast == slow
    assert hash(fast) == hash(slow)
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_dump_json() == slow.model_dump_json()
    with pytest.raises(ValidationError):
        fast.dense = 1.0  # type: ignore[misc]  # still frozen
    copied = fast.model_copy(update={"fused": 0.2})
    assert copied.fused == 0.2
    assert fast.fused == 0.1
    assert fast.model_fields_set == slow.model_fields_set
    hit = trusted(ScoredHit, {"id": "i", "score": 1.0, "scores": fast, "payload": _payload()})
    assert ScoredHit.model_validate(hit.model_dump()) == hit
