"""Tenant quotas over the real API (real Redis, hub, worker): collections, documents, stored
bytes, feedback pairs per collection and uploads in flight, each refused in the one error
body naming the quota, exact under concurrent requests; a restore is held to the same
quotas."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.services.stack import Stack, running_stack

pytestmark = pytest.mark.slow

KEYS = {
    "t-col": "quota-col-key-0123456789",
    "t-col2": "quota-col2-key-0123456789",
    "t-doc": "quota-doc-key-0123456789",
    "t-byte": "quota-byte-key-0123456789",
    "t-fb": "quota-fb-key-0123456789",
    "t-up": "quota-up-key-0123456789",
    "t-up2": "quota-up2-key-0123456789",
    "t-rst": "quota-rst-key-0123456789",
}
COLLECTIONS, DOCUMENTS, BYTES, FEEDBACK = 3, 5, 3000, 20


@pytest.fixture(scope="module")
def stack(
    redis_url: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(
        redis_url,
        hub_url,
        tmp_path_factory.mktemp("quotas"),
        SIEVE_API_KEYS=json.dumps(KEYS),
        SIEVE_QUOTA_COLLECTIONS=str(COLLECTIONS),
        SIEVE_QUOTA_DOCUMENTS=str(DOCUMENTS),
        SIEVE_QUOTA_STORED_BYTES=str(BYTES),
        SIEVE_QUOTA_FEEDBACK_PER_COLLECTION=str(FEEDBACK),
        SIEVE_QUOTA_UPLOADS_IN_FLIGHT="1",
    ) as s:
        yield s


def _client(stack: Stack, tenant: str) -> httpx.Client:
    return stack.client(KEYS[tenant])


def _quota_error(resp: httpx.Response, status: int, quota: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["quota"] == quota
    assert error["request_id"]
    return error


def _docs(*items: tuple[str, str]) -> dict[str, Any]:
    return {"documents": [{"id": i, "text": t} for i, t in items]}


def test_collections_quota_is_per_tenant_and_exact_under_a_burst(stack: Stack) -> None:
    with _client(stack, "t-col") as c, _client(stack, "t-col2") as other:
        # A burst of creates against an empty quota: exactly the quota succeeds.
        with ThreadPoolExecutor(6) as pool:
            answers = list(
                pool.map(lambda n: c.post("/v1/collections", json={"name": f"c{n}"}), range(6))
            )
        assert sorted(r.status_code for r in answers) == [201] * COLLECTIONS + [409] * (
            6 - COLLECTIONS
        )
        error = _quota_error(c.post("/v1/collections", json={"name": "more"}), 409, "collections")
        assert (error["limit"], error["current"]) == (COLLECTIONS, COLLECTIONS)
        assert "collections quota is 3" in error["message"]
        assert len(c.get("/v1/collections").json()["collections"]) == COLLECTIONS
        # Another tenant has its own quota; a delete frees one.
        assert other.post("/v1/collections", json={"name": "mine"}).status_code == 201
        created = [r.json()["name"] for r in answers if r.status_code == 201]
        assert c.delete(f"/v1/collections/{created[0]}").status_code == 204
        assert c.post("/v1/collections", json={"name": "more"}).status_code == 201


def test_documents_quota_counts_live_documents_and_refuses_without_a_trace(stack: Stack) -> None:
    blobs = stack.root / "blobs"
    with _client(stack, "t-doc") as c:
        assert c.post("/v1/collections", json={"name": "a"}).status_code == 201
        assert c.post("/v1/collections", json={"name": "b"}).status_code == 201
        url_a, url_b = "/v1/collections/a/documents", "/v1/collections/b/documents"
        ok = c.post(url_a, json=_docs(("d1", "one"), ("d2", "two"), ("d3", "three")))
        assert ok.status_code == 202, ok.text
        stack.wait_job(c, ok.json()["job_id"])
        blob_files = sorted(p.name for p in blobs.rglob("*") if p.is_file())
        # The quota is the tenant's, over all its collections.
        refused = c.post(url_b, json=_docs(("e1", "x1"), ("e2", "x2"), ("e3", "x3")))
        error = _quota_error(refused, 409, "documents")
        assert (error["limit"], error["current"]) == (DOCUMENTS, 3)
        assert c.get(url_b).json()["total"] == 0
        assert sorted(p.name for p in blobs.rglob("*") if p.is_file()) == blob_files
        # Unchanged and replaced documents do not grow it; up to the quota is fine.
        assert c.post(url_a, json=_docs(("d1", "one"), ("d2", "two v2"))).status_code == 202
        assert c.post(url_b, json=_docs(("e1", "x1"), ("e2", "x2"))).status_code == 202
        _quota_error(c.post(url_b, json=_docs(("e3", "x3"))), 409, "documents")
        # A deleted document frees its place; so does a deleted collection.
        assert c.delete(f"{url_a}/d3").status_code == 202
        assert c.post(url_b, json=_docs(("e3", "x3"))).status_code == 202
        _quota_error(c.post(url_b, json=_docs(("e4", "x4"))), 409, "documents")
        assert c.delete("/v1/collections/a").status_code == 204
        assert c.post(url_b, json=_docs(("e4", "x4"), ("e5", "x5"))).status_code == 202


def test_stored_bytes_quota_follows_replacements_and_deletes(stack: Stack) -> None:
    raw = redis.Redis.from_url(stack.env["SIEVE_REDIS_URL"], decode_responses=True)
    with raw, _client(stack, "t-byte") as c:
        assert c.post("/v1/collections", json={"name": "kb"}).status_code == 201
        url = "/v1/collections/kb/documents"
        assert c.post(url, json=_docs(("big", "a" * 2000))).status_code == 202
        size = c.get(f"{url}/big").json()["size"]
        assert 2000 < size < BYTES
        error = _quota_error(c.post(url, json=_docs(("more", "b" * 1200))), 409, "stored_bytes")
        assert (error["limit"], error["current"]) == (BYTES, size)
        # The counter is rebuilt from the records when it is missing (an older deployment).
        raw.delete("sieve:bytes:t-byte:kb")
        error = _quota_error(c.post(url, json=_docs(("more", "b" * 1200))), 409, "stored_bytes")
        assert error["current"] == size
        # Replacing the big document by a small one makes room.
        assert c.put(f"{url}/big", json={"text": "small"}).status_code == 202
        assert c.post(url, json=_docs(("more", "b" * 1200))).status_code == 202
        _quota_error(c.post(url, json=_docs(("third", "c" * 2000))), 409, "stored_bytes")
        assert c.delete(f"{url}/more").status_code == 202
        assert c.post(url, json=_docs(("third", "c" * 2000))).status_code == 202


def test_feedback_cap_holds_under_concurrent_posts_and_pages_with_a_cursor(stack: Stack) -> None:
    with _client(stack, "t-fb") as c:
        assert c.post("/v1/collections", json={"name": "kb"}).status_code == 201
        url = "/v1/collections/kb/feedback"

        def post(n: int) -> httpx.Response:
            body = {"query": f"query {n}", "document_id": f"doc-{n}", "relevant": n % 2 == 0}
            return c.post(url, json=body)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post, range(2 * FEEDBACK)))
        statuses = [r.status_code for r in answers]
        assert statuses.count(201) == FEEDBACK
        assert statuses.count(409) == FEEDBACK
        refused = next(r for r in answers if r.status_code == 409)
        assert _quota_error(refused, 409, "feedback")["limit"] == FEEDBACK
        kept = {f"doc-{n}" for n, r in enumerate(answers) if r.status_code == 201}
        # A judged pair may still change its judgment at the cap.
        again = next(n for n, r in enumerate(answers) if r.status_code == 201)
        body = {"query": f"query {again}", "document_id": f"doc-{again}", "relevant": True}
        assert c.post(url, json=body).json()["count"] == FEEDBACK
        # Paged: every pair exactly once, the rewritten one last.
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"limit": 7, **({"cursor": cursor} if cursor else {})}
            page = c.get(url, params=params).json()
            assert page["count"] == FEEDBACK
            seen += [j["document_id"] for j in page["judgments"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 3
        assert len(seen) == FEEDBACK
        assert set(seen) == kept
        assert seen[-1] == f"doc-{again}"
        bad = c.get(url, params={"cursor": "nope"})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "invalid_cursor"


def test_uploads_in_flight_per_tenant_get_429_with_retry_after(stack: Stack) -> None:
    release = threading.Event()
    started = threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield b'{"documents": [{"id": "slow", '
        started.set()
        release.wait(60)
        yield b'"text": "arrived at last"}]}'

    with _client(stack, "t-up") as c, _client(stack, "t-up2") as other:
        for client in (c, other):
            assert client.post("/v1/collections", json={"name": "kb"}).status_code == 201
        url = "/v1/collections/kb/documents"
        headers = {"Content-Type": "application/json"}
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(c.post, url, content=slow_body(), headers=headers)
            assert started.wait(30)
            time.sleep(0.5)  # the first chunk is being read by the API
            try:
                busy = c.post(url, json=_docs(("fast", "quick")))
                error = _quota_error(busy, 429, "uploads_in_flight")
                assert (error["limit"], error["current"]) == (1, 1)
                assert busy.headers["Retry-After"] == "1"
                # Another tenant is not held up; reads are not uploads.
                assert other.post(url, json=_docs(("fast", "quick"))).status_code == 202
                assert c.get(url).status_code == 200
            finally:
                release.set()
            assert slow.result(timeout=60).status_code == 202
        assert c.post(url, json=_docs(("fast", "quick"))).status_code == 202


def _bundle(c: httpx.Client, name: str, path: Path) -> bytes:
    snap = c.post(f"/v1/collections/{name}/snapshot").json()["id"]
    deadline = time.monotonic() + 60
    while (view := c.get(f"/v1/snapshots/{snap}").json())["state"] == "running":
        assert time.monotonic() < deadline, view
        time.sleep(0.1)
    assert view["state"] == "completed", view
    path.write_bytes(c.get(f"/v1/snapshots/{snap}/file").content)
    return path.read_bytes()


def test_a_restore_past_a_quota_is_refused_before_anything_is_written(
    stack: Stack, tmp_path: Path
) -> None:
    raw = redis.Redis.from_url(stack.env["SIEVE_REDIS_URL"], decode_responses=True)
    with raw, _client(stack, "t-rst") as c:
        for name, docs in (
            ("small", _docs(("s1", "one"), ("s2", "two"), ("s3", "three"))),
            ("big", _docs(("b1", "a" * 2000))),
        ):
            assert c.post("/v1/collections", json={"name": name}).status_code == 201
            job = c.post(f"/v1/collections/{name}/documents", json=docs).json()["job_id"]
            stack.wait_job(c, job)
        small = _bundle(c, "small", tmp_path / "small.sieve")
        big = _bundle(c, "big", tmp_path / "big.sieve")
        held = sum(
            d["size"]
            for name in ("small", "big")
            for d in c.get(f"/v1/collections/{name}/documents").json()["documents"]
        )
        keys = sorted(raw.scan_iter(match="sieve:*t-rst*"))

        def restore(bundle: bytes) -> httpx.Response:
            return c.post("/v1/collections/restore", params={"name": "copy"}, content=bundle)

        # 4 documents held, the quota is 5: three more are refused, one fits...
        error = _quota_error(restore(small), 409, "documents")
        assert (error["limit"], error["current"]) == (DOCUMENTS, 4)
        assert "this restore adds 3" in error["message"]
        # ... but not its 2,000 bytes over the 3,000 of stored bytes.
        error = _quota_error(restore(big), 409, "stored_bytes")
        assert (error["limit"], error["current"]) == (BYTES, held)
        assert sorted(raw.scan_iter(match="sieve:*t-rst*")) == keys
        # With the tenant's third collection, no restore fits.
        assert c.post("/v1/collections", json={"name": "third"}).status_code == 201
        keys = sorted(raw.scan_iter(match="sieve:*t-rst*"))
        error = _quota_error(restore(big), 409, "collections")
        assert (error["limit"], error["current"]) == (COLLECTIONS, COLLECTIONS)
        # Nothing of any of them was written.
        assert c.get("/v1/collections/copy").status_code == 404
        assert sorted(raw.scan_iter(match="sieve:*t-rst*")) == keys
        assert raw.hlen("sieve:restores") == 0
        # Room made (a collection and its bytes deleted), the same restore succeeds.
        for name in ("third", "big"):
            assert c.delete(f"/v1/collections/{name}").status_code == 204
        resp = restore(big)
        assert resp.status_code == 201, resp.text
        assert resp.json()["documents"] == 1
