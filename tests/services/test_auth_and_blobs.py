"""API keys → tenants; the content-addressed blob store."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from pydantic import SecretStr, ValidationError
from starlette.requests import Request

from core.errors import NotFound, Unauthorized
from core.settings import ApiSettings
from indexing.accept import task_batches
from indexing.messages import DocVersion
from ingest.blob_store import LocalBlobStore
from services.api.auth import OPEN_TENANT, TenantResolver, remember_tenant
from services.api.deps import ApiDeps, get_tenant

KEY_A = "a" * 8 + "-tenant-a-key-0001"
KEY_B = "b" * 8 + "-tenant-b-key-0002"


def test_keys_resolve_to_their_tenant_and_nothing_else() -> None:
    resolver = TenantResolver({"team-a": SecretStr(KEY_A), "team-b": SecretStr(KEY_B)})
    assert resolver.resolve(f"Bearer {KEY_A}") == "team-a"
    assert resolver.resolve(f"bearer {KEY_B}") == "team-b"
    for bad in (None, "", "Bearer", f"Basic {KEY_A}", "Bearer nope", f"Bearer {KEY_A}x"):
        with pytest.raises(Unauthorized):
            resolver.resolve(bad)


def test_a_route_takes_the_tenant_the_request_context_resolved_and_resolves_only_without() -> None:
    calls: list[str | None] = []

    class Counting(TenantResolver):
        def resolve(self, authorization: str | None) -> str:
            calls.append(authorization)
            return super().resolve(authorization)

    keys = {"team-a": SecretStr(KEY_A), "team-b": SecretStr(KEY_B)}
    deps = cast("ApiDeps", SimpleNamespace(resolver=Counting(keys)))
    resolved = Request({"type": "http", "headers": [], "state": {}})
    remember_tenant(resolved.scope["state"], "team-a")
    assert get_tenant(resolved, deps, f"Bearer {KEY_A}") == "team-a"
    assert calls == []
    fresh = Request({"type": "http", "headers": [], "state": {}})
    assert get_tenant(fresh, deps, f"Bearer {KEY_B}") == "team-b"
    assert calls == [f"Bearer {KEY_B}"]
    with pytest.raises(Unauthorized):
        get_tenant(fresh, deps, "Bearer nope")


def test_open_mode_is_one_default_tenant() -> None:
    assert TenantResolver({}).resolve(None) == OPEN_TENANT


def test_open_mode_refused_off_loopback_and_weak_keys_refused() -> None:
    with pytest.raises(ValidationError, match="anyone"):
        ApiSettings(host="0.0.0.0")
    assert ApiSettings(host="0.0.0.0", keys={"t": SecretStr(KEY_A)}).open_mode is False
    with pytest.raises(ValidationError, match="shorter than 16"):
        ApiSettings(keys={"t": SecretStr("short")})
    with pytest.raises(ValidationError, match="share one API key"):
        ApiSettings(keys={"t": SecretStr(KEY_A), "u": SecretStr(KEY_A)})
    with pytest.raises(ValidationError, match="placeholder"):
        ApiSettings(keys={"t": SecretStr("changeme")})


def test_blob_store_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    key = blobs.put(b"hello")
    assert key == hashlib.sha256(b"hello").hexdigest()
    assert blobs.put(b"hello") == key
    assert blobs.get(key) == b"hello"
    assert blobs.exists(key)
    assert [p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == [key]
    with pytest.raises(NotFound):
        blobs.get("0" * 64)
    with pytest.raises(NotFound):
        blobs.get("../../etc/passwd")
    assert not blobs.exists("../x")


def test_task_batches_bound_count_and_bytes_in_order() -> None:
    docs = [DocVersion(id=f"d{i}", version=i + 1) for i in range(7)]
    sizes = {d.id: size for d, size in zip(docs, [10, 10, 10, 500, 10, 10, 10], strict=True)}

    def ids(batches: list[list[DocVersion]]) -> list[list[str]]:
        return [[d.id for d in batch] for batch in batches]

    assert ids(task_batches(docs, sizes, max_docs=3, max_bytes=10_000)) == [
        ["d0", "d1", "d2"],
        ["d3", "d4", "d5"],
        ["d6"],
    ]
    assert ids(task_batches(docs, sizes, max_docs=100, max_bytes=100)) == [
        ["d0", "d1", "d2"],
        ["d3"],
        ["d4", "d5", "d6"],
    ]
    assert task_batches([], {}, 3, 100) == []


def test_put_many_stores_every_blob_under_its_content_hash(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    datas = [f"member {i}".encode() for i in range(50)] + [b"member 3"]
    keys = blobs.put_many(datas)
    assert keys == [hashlib.sha256(d).hexdigest() for d in datas]
    assert all(blobs.get(k) == d for k, d in zip(keys, datas, strict=True))
    assert not list((tmp_path / "blobs").rglob(".tmp-*"))


def test_staged_blobs_appear_only_on_commit_and_a_discard_leaves_nothing(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    kept = blobs.put(b"already stored")
    staging = blobs.staging()
    keys = [staging.put(d) for d in (b"one", b"two", b"one", b"already stored")]
    assert keys[0] == keys[2] == hashlib.sha256(b"one").hexdigest()
    assert not blobs.exists(keys[0])  # invisible until committed
    staging.release(keys[1])  # e.g. a member of a refused archive
    staging.commit()
    assert blobs.get(keys[0]) == b"one"
    assert not blobs.exists(keys[1])
    assert blobs.get(kept) == b"already stored"
    refused = blobs.staging()
    refused.put(b"three")
    refused.discard()
    assert not blobs.exists(hashlib.sha256(b"three").hexdigest())
    files = {p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()}
    assert files == {kept, keys[0]}


def test_a_crashed_request_s_staging_is_swept_once_stale(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    fresh, stale = blobs.staging(), blobs.staging()
    fresh.put(b"a request in flight")
    stale.put(b"a request that died")
    stale_dirs = list((tmp_path / "blobs" / ".staging").iterdir())
    old = time.time() - LocalBlobStore.STALE_STAGING_S - 60
    for area in stale_dirs:
        if (area / hashlib.sha256(b"a request that died").hexdigest()).exists():
            os.utime(area, (old, old))
    LocalBlobStore(tmp_path / "blobs")  # a restart
    left = [p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert left == [hashlib.sha256(b"a request in flight").hexdigest()]
