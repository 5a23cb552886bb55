"""core/: ids, errors, domain types, settings validation, structured logs."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    SieveError,
    StoreLocked,
    UpstreamRejected,
    UpstreamUnavailable,
)
from core.ids import SIEVE_NAMESPACE, content_sha256, path_segment, point_id
from core.logs import JsonFormatter, log_context
from core.settings import ModelSettings, RedisSettings, StoreBackend, StoreSettings
from core.types import (
    AnyOf,
    ChunkFilter,
    FieldEquals,
    HybridQuery,
    QueryMode,
    Range,
    SparseVec,
    StoreCollectionSpec,
)


def test_point_id_is_uuid5_of_collection_document_chunk() -> None:
    pid = point_id("papers", "doc-1", 3)
    assert pid == str(uuid.uuid5(SIEVE_NAMESPACE, "papers:doc-1:3"))
    assert uuid.UUID(pid).version == 5
    assert point_id("papers", "doc-1", 3) == pid
    assert len({point_id("papers", "doc-1", n) for n in range(100)}) == 100
    assert point_id("other", "doc-1", 3) != pid
    with pytest.raises(ValueError, match="chunk_no"):
        point_id("papers", "doc-1", -1)


def test_content_hash_same_for_text_and_utf8_bytes() -> None:
    assert content_sha256("héllo") == content_sha256("héllo".encode())
    assert content_sha256(b"") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_error_tree_codes_and_hints() -> None:
    assert issubclass(PayloadTooLarge, InvalidInput)
    assert issubclass(StoreLocked, Conflict)
    for cls in (InvalidInput, NotFound, Conflict, UpstreamUnavailable, UpstreamRejected):
        assert issubclass(cls, SieveError)
    err = UpstreamUnavailable("hub said 429", retry_after=2.5)
    assert (err.code, err.retry_after, str(err)) == ("upstream_unavailable", 2.5, "hub said 429")
    assert NotFound("no such collection", code="collection_not_found").code == (
        "collection_not_found"
    )
    assert UpstreamRejected("bad", status=400).status == 400


def test_collection_spec_rejects_bad_names_and_sizes() -> None:
    assert StoreCollectionSpec(name="papers_2024", dense_size=384).sparse is True
    for bad in ("", "../x", "a b", "-lead", "x" * 200):
        with pytest.raises(ValidationError):
            StoreCollectionSpec(name=bad, dense_size=384)
    with pytest.raises(ValidationError):
        StoreCollectionSpec(name="ok", dense_size=0)


def test_filters_validate_keys_bounds_and_kinds() -> None:
    flt = ChunkFilter.model_validate(
        {
            "must": [
                {"kind": "eq", "key": "source", "value": "a.pdf"},
                {"kind": "any", "key": "document_id", "values": ["1", "2"]},
                {"kind": "range", "key": "metadata.year", "gte": 2020},
            ]
        }
    )
    assert [type(c) for c in flt.must] == [FieldEquals, AnyOf, Range]
    with pytest.raises(ValidationError, match="at least one"):
        Range(key="page")
    with pytest.raises(ValidationError, match="mixes"):
        Range(key="page", gte=1, lt=datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(ValidationError, match="invalid payload key"):
        FieldEquals(key="metadata..x", value=1)
    with pytest.raises(ValidationError):
        AnyOf(key="source", values=[])
    assert Range(key="ts", lt=datetime(2024, 1, 1, tzinfo=UTC)).is_datetime


def test_hybrid_query_needs_the_legs_its_mode_uses() -> None:
    sparse = SparseVec(indices=[1], values=[1.0])
    with pytest.raises(ValidationError, match="dense vector"):
        HybridQuery(sparse=sparse)
    with pytest.raises(ValidationError, match="sparse vector"):
        HybridQuery(dense=[0.1], mode=QueryMode.HYBRID)
    assert HybridQuery(sparse=sparse, mode=QueryMode.SPARSE).leg_limit == 50
    assert (
        HybridQuery(dense=[0.1], mode=QueryMode.DENSE, limit=5, prefetch_limit=40).leg_limit == 40
    )
    with pytest.raises(ValidationError, match="differ in length"):
        SparseVec(indices=[1, 2], values=[1.0])


def test_settings_read_env_and_refuse_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIEVE_QDRANT_BACKEND", "server")
    with pytest.raises(ValidationError, match="SIEVE_QDRANT_URL"):
        StoreSettings()
    monkeypatch.setenv("SIEVE_QDRANT_URL", "http://qdrant:6333")
    assert StoreSettings().backend is StoreBackend.SERVER
    monkeypatch.setenv("SIEVE_QDRANT_API_KEY", "changeme")
    with pytest.raises(ValidationError, match="placeholder"):
        StoreSettings()
    monkeypatch.setenv("SIEVE_REDIS_URL", "http://localhost")
    with pytest.raises(ValidationError, match="redis://"):
        RedisSettings()
    monkeypatch.setenv("SIEVE_MODEL_BASE_URL", "https://openai.inference.de-txl.ionos.com/v1")
    with pytest.raises(ValidationError, match="IONOS"):
        ModelSettings()
    monkeypatch.setenv("SIEVE_MODEL_API_KEY", "<token>")
    with pytest.raises(ValidationError, match="placeholder"):
        ModelSettings()
    monkeypatch.setenv("SIEVE_MODEL_API_KEY", "eyJhbGciOi.real.jwt")
    model = ModelSettings()
    assert model.api_key == SecretStr("eyJhbGciOi.real.jwt")
    assert "eyJ" not in repr(model)


def test_json_logs_carry_context_and_extra_fields() -> None:
    record = logging.LogRecord("sieve.test", logging.INFO, __file__, 1, "job done", None, None)
    record.chunks = 12
    with log_context(request_id="req-1", job_id="job-9"):
        line = JsonFormatter().format(record)
    out = json.loads(line)
    assert out["event"] == "job done"
    assert (out["request_id"], out["job_id"], out["chunks"]) == ("req-1", "job-9", 12)
    assert out["level"] == "info"
    outside = json.loads(JsonFormatter().format(record))
    assert "request_id" not in outside


def test_a_path_segment_never_normalises_to_another_resource() -> None:
    assert path_segment("dir/a b.md") == "dir%2Fa%20b.md"
    assert path_segment("..") == "%2E%2E"
    assert path_segment(".") == "%2E"
    assert path_segment("..a") == "..a"
    assert path_segment("100%#?") == "100%25%23%3F"
    for hostile in ("../../victim", "..", ".", "a/./b", "..\\x"):
        path = "/v1/collections/kb/documents/" + path_segment(hostile)
        # httpx sends it as built: nothing in it is a dot segment to collapse.
        assert httpx.Request("GET", "http://api" + path).url.raw_path.decode() == path
