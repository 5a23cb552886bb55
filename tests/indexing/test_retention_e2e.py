"""Retention over the real processes (Redis, API with its sweep, a worker) at seconds scale.

Finished jobs, deleted documents and their tombstones (one whose delete message was lost
included), and the blobs of replaced and deleted versions all go; live documents, their
blobs and their points stay, and every job still ended.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from indexing.state_store import state_key
from ingest.blob_store import LocalBlobStore
from tests.indexing.procstack import ProcStack, proc_stack

pytestmark = pytest.mark.slow

TENANT = "team-a"
RETENTION_S = 3.0
COLL = "kept"


@pytest.fixture(scope="module")
def stack(hub_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcStack]:
    with proc_stack(
        hub_url,
        tmp_path_factory.mktemp("retention"),
        SIEVE_RETENTION_JOBS_S=str(RETENTION_S),
        SIEVE_RETENTION_TOMBSTONES_S=str(RETENTION_S),
        SIEVE_RETENTION_BLOBS_S=str(RETENTION_S),
        SIEVE_RETENTION_SWEEP_EVERY_S="0.5",
    ) as handle:
        yield handle


def _record(doc_id: str, rev: str) -> dict[str, Any]:
    words = " ".join(f"{doc_id}word{i} {rev}" for i in range(40))
    return {"id": doc_id, "title": f"{doc_id} {rev}", "text": f"marker{doc_id}{rev} {words}"}


def _upload(c: httpx.Client, *records: dict[str, Any]) -> str:
    resp = c.post(f"/v1/collections/{COLL}/documents", json={"documents": list(records)})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["job_id"])


def _ended(c: httpx.Client, job_id: str) -> None:
    deadline = time.monotonic() + 120
    while (state := c.get(f"/v1/jobs/{job_id}").json()["state"]) in ("queued", "running"):
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    assert state == "completed", state


def test_finished_jobs_deleted_documents_and_dead_blobs_expire_live_ones_stay(
    stack: ProcStack,
) -> None:
    blobs = LocalBlobStore(Path(stack.env["SIEVE_INGEST_BLOB_DIR"]))
    state = stack.state()
    with stack.client() as c:
        assert c.post("/v1/collections", json={"name": COLL}).status_code == 201
        first = _upload(c, *(_record(i, "v1") for i in ("live", "replaced", "deleted", "lost")))
        _ended(c, first)
        second = _upload(c, _record("replaced", "v2"))
        assert c.delete(f"/v1/collections/{COLL}/documents/deleted").status_code == 202
        # A tombstone whose delete message was lost: only the sweep can still remove it.
        state.delete(TENANT, COLL, "lost")
        _ended(c, second)
        lost_blob = state.raw().hget(state_key("doc", TENANT, COLL, "lost"), "blob_key")
        assert lost_blob is not None

        deadline = time.monotonic() + 60
        while True:
            docs = c.get(f"/v1/collections/{COLL}/documents").json()["documents"]
            live_blobs = {d["content_hash"] for d in docs}
            jobs = [c.get(f"/v1/jobs/{j}").status_code for j in (first, second)]
            gone = [state.find_document(TENANT, COLL, i) is None for i in ("deleted", "lost")]
            if jobs == [404, 404] and all(gone) and set(blobs.keys()) == live_blobs:
                break
            assert time.monotonic() < deadline, (jobs, gone, sorted(blobs.keys()), live_blobs)
            time.sleep(0.5)

        assert {d["id"]: d["status"] for d in docs} == {"live": "indexed", "replaced": "indexed"}
        assert c.get(f"/v1/jobs/{first}").json()["error"]["code"] == "job_not_found"
        assert not list(state.raw().scan_iter(match=state_key("job*", "*")))
        info = c.get(f"/v1/collections/{COLL}").json()
        assert info["chunks"] == sum(d["chunk_count"] for d in docs)  # "lost"'s points too
        for doc_id, rev in (("live", "v1"), ("replaced", "v2"), ("lost", "v1")):
            hits = c.post(
                f"/v1/collections/{COLL}/query",
                json={"query": f"marker{doc_id}{rev}", "rerank": False, "top_n": 3},
            ).json()["results"]
            found = {h["document_id"] for h in hits}
            assert (doc_id in found) == (doc_id != "lost"), (doc_id, found)
    # Live state never expires.
    for doc_id in ("live", "replaced"):
        assert state.raw().pttl(state_key("doc", TENANT, COLL, doc_id)) == -1
    assert state.raw().pttl(state_key("collections", TENANT)) == -1
    assert state.raw().pttl(state_key("version")) == -1
    state.close()


def _query_ids(c: httpx.Client, coll: str, text: str) -> set[str]:
    resp = c.post(
        f"/v1/collections/{coll}/query", json={"query": text, "rerank": False, "top_n": 5}
    )
    assert resp.status_code == 200, resp.text
    return {h["document_id"] for h in resp.json()["results"]}


def test_expired_documents_leave_queries_at_once_and_the_sweep_deletes_them(
    stack: ProcStack,
) -> None:
    blobs = LocalBlobStore(Path(stack.env["SIEVE_INGEST_BLOB_DIR"]))
    ahead_s = 8.0
    with closing(stack.state()) as state, stack.client() as c:
        assert c.post("/v1/collections", json={"name": "expiring"}).status_code == 201
        made = c.post("/v1/collections", json={"name": "leased", "ttl_s": ahead_s})
        assert made.status_code == 201, made.text
        assert made.json()["ttl_s"] == ahead_s
        # Refused with the one error body, before anything is read or written.
        for params, code in (
            ({"expires_at": "2030-01-01T00:00:00"}, "invalid_expiry"),  # no offset
            ({"expires_at": "2020-01-01T00:00:00Z"}, "expiry_in_past"),
            ({"ttl_s": "-5"}, "invalid_expiry"),
        ):
            bad = c.post(
                "/v1/collections/expiring/documents",
                params=params,
                json={"documents": [_record("x", "v1")]},
            )
            assert (bad.status_code, bad.json()["error"]["code"]) == (400, code), bad.text
        too_long = c.post("/v1/collections", json={"name": "forever", "ttl_s": 1e12})
        assert too_long.status_code == 400, too_long.text

        start = time.time()
        at = datetime.fromtimestamp(start + ahead_s, UTC).isoformat()
        jobs = [
            _upload_to(c, "expiring", [_record("short", "v1")], expires_at=at),
            _upload_to(c, "expiring", [_record("stays", "v1")]),
            _upload_to(c, "leased", [_record("leased", "v1")]),  # the collection's ttl_s
            _upload_to(c, "leased", [_record("own", "v1")], ttl_s=600),  # its own expiry
        ]
        for job in jobs:
            _ended(c, job)
        doc = c.get("/v1/collections/expiring/documents/short").json()
        assert doc["expires_at"].endswith("Z")
        assert doc["expired"] is False
        assert datetime.fromisoformat(doc["expires_at"]).timestamp() == pytest.approx(
            start + ahead_s, abs=0.01
        )
        leased = c.get("/v1/collections/leased/documents/leased").json()
        # The collection's ttl_s counts from the upload's accept, a little after ``start``.
        leased_at = datetime.fromisoformat(leased["expires_at"]).timestamp()
        assert leased_at == pytest.approx(start + ahead_s, abs=5)
        short_blob = state.find_document(TENANT, "expiring", "short")
        leased_blob = state.find_document(TENANT, "leased", "leased")
        assert short_blob is not None
        assert leased_blob is not None
        dead_blobs = {short_blob.blob_key, leased_blob.blob_key}
        assert time.time() < start + ahead_s, "indexing took longer than the expiry"
        assert "short" in _query_ids(c, "expiring", "markershortv1")
        assert "leased" in _query_ids(c, "leased", "markerleasedv1")

        time.sleep(max(0.0, max(start + ahead_s, leased_at) - time.time()) + 0.05)
        assert "short" not in _query_ids(c, "expiring", "markershortv1")
        assert "leased" not in _query_ids(c, "leased", "markerleasedv1")
        assert "stays" in _query_ids(c, "expiring", "markerstaysv1")
        assert "own" in _query_ids(c, "leased", "markerownv1")

        # The sweep deletes them as a client's delete would: records, points, then blobs.
        deadline = time.monotonic() + 30
        while True:
            gone = [
                state.find_document(TENANT, coll, i) is None
                for coll, i in (("expiring", "short"), ("leased", "leased"))
            ]
            chunks = [
                c.get(f"/v1/collections/{n}").json()["chunks"] for n in ("expiring", "leased")
            ]
            live = [
                sum(
                    d["chunk_count"]
                    for d in c.get(f"/v1/collections/{n}/documents").json()["documents"]
                )
                for n in ("expiring", "leased")
            ]
            if all(gone) and chunks == live and not dead_blobs & set(blobs.keys()):
                break
            assert time.monotonic() < deadline, (gone, chunks, live, dead_blobs & set(blobs.keys()))
            time.sleep(0.5)
        listed = {
            n: [d["id"] for d in c.get(f"/v1/collections/{n}/documents").json()["documents"]]
            for n in ("expiring", "leased")
        }
        assert listed == {"expiring": ["stays"], "leased": ["own"]}
        assert c.get("/v1/collections/expiring/documents/short").status_code == 404


def _upload_to(c: httpx.Client, coll: str, records: list[dict[str, Any]], **params: Any) -> str:
    resp = c.post(f"/v1/collections/{coll}/documents", params=params, json={"documents": records})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["job_id"])
