"""Ingestion end to end: real Redis, real hub over HTTP, a real Celery worker, the Edge store."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docx
import pytest

from ingest.chunker import chunk_document
from ingest.documents import ParseFailure
from ingest.limits import IngestLimits
from ingest.records import record_to_document
from ingest.tokenizer import load_bge_small_tokenizer
from tests.services.stack import KEY_B, Stack, running_stack

pytestmark = pytest.mark.slow

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "scifact" / "corpus.jsonl"

PARA = (
    "Retrieval augmented generation grounds a language model in documents. "
    "A first stage recalls candidates cheaply; a second stage reranks them precisely. "
)


@pytest.fixture(scope="module")
def stack(
    redis_url: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(redis_url, hub_url, tmp_path_factory.mktemp("stack")) as handle:
        yield handle


@pytest.fixture(scope="module")
def collection(stack: Stack) -> str:
    with stack.client() as c:
        resp = c.post("/v1/collections", json={"name": "docs"})
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert (body["dimension"], body["embedding_model"]) == (384, "BAAI/bge-small-en-v1.5")
    return "docs"


def _chunks(stack: Stack, name: str) -> int:
    with stack.client() as c:
        count: int = c.get(f"/v1/collections/{name}").json()["chunks"]
        return count


def test_json_records_index_and_reupload_adds_nothing(stack: Stack, collection: str) -> None:
    docs = [
        {"id": "r1", "text": PARA * 3, "title": "RAG", "metadata": {"lang": "en"}},
        {"id": "r2", "text": "Qdrant stores dense and sparse vectors.", "title": "Qdrant"},
    ]
    with stack.client() as c:
        resp = c.post(f"/v1/collections/{collection}/documents", json={"documents": docs})
        assert resp.status_code == 202, resp.text
        accepted = resp.json()
        assert sorted(accepted["documents"]) == ["r1", "r2"]
        job = stack.wait_job(c, accepted["job_id"])
        assert job["state"] == "completed", job
        assert job["counts"] == {"indexed": 2}
        assert job["finished_at"] >= job["created_at"]
        r1 = c.get(f"/v1/collections/{collection}/documents/r1").json()
        assert r1["status"] == "indexed"
        assert r1["chunk_count"] >= 1
        before = _chunks(stack, collection)
        again = c.post(f"/v1/collections/{collection}/documents", json={"documents": docs}).json()
        assert again["documents"] == []
        assert sorted(again["unchanged"]) == ["r1", "r2"]
        assert stack.wait_job(c, again["job_id"])["state"] == "completed"
        assert _chunks(stack, collection) == before


def test_replacing_with_a_shorter_version_leaves_no_orphan(stack: Stack, collection: str) -> None:
    long_text = "\n\n".join(f"Section {i}. " + PARA * 6 for i in range(8))
    with stack.client() as c:
        base = f"/v1/collections/{collection}/documents"
        job = c.post(base, json={"documents": [{"id": "long", "text": long_text}]}).json()
        stack.wait_job(c, job["job_id"])
        long_doc = c.get(f"{base}/long").json()
        assert long_doc["chunk_count"] >= 4
        total_before = _chunks(stack, collection)
        resp = c.put(f"{base}/long", json={"text": "Now it is one short paragraph."})
        assert resp.status_code == 202, resp.text
        assert stack.wait_job(c, resp.json()["job_id"])["state"] == "completed"
        short_doc = c.get(f"{base}/long").json()
        assert short_doc["chunk_count"] == 1
        assert _chunks(stack, collection) == total_before - long_doc["chunk_count"] + 1


def test_files_and_bad_files_fail_alone(stack: Stack, collection: str) -> None:
    document = docx.Document()
    document.add_heading("Report", level=1)
    document.add_paragraph(PARA)
    buf = io.BytesIO()
    document.save(buf)
    files = [
        ("files", ("notes.txt", PARA.encode("latin-1"), "text/plain")),
        (
            "files",
            ("guide.md", f"# Guide\n\n{PARA}\n\n## Usage\n\n{PARA}".encode(), "text/markdown"),
        ),
        (
            "files",
            (
                "page.html",
                f"<html><nav>menu</nav><main><p>{PARA}</p></main></html>".encode(),
                "text/html",
            ),
        ),
        ("files", ("report.docx", buf.getvalue(), "application/octet-stream")),
        ("files", ("empty.txt", b"", "text/plain")),
        ("files", ("junk.bin", bytes(range(256)) * 64, "application/octet-stream")),
        ("files", ("broken.pdf", b"%PDF-1.7\n garbage without objects", "application/pdf")),
    ]
    with stack.client() as c:
        resp = c.post(f"/v1/collections/{collection}/documents", files=files)
        assert resp.status_code == 202, resp.text
        job = stack.wait_job(c, resp.json()["job_id"])
        assert job["state"] == "completed_with_errors"
        states = job["documents"]
        for ok in ("notes.txt", "guide.md", "page.html", "report.docx"):
            assert states[ok] == "indexed", (ok, job)
        assert job["errors"]["empty.txt"]["reason"] == "empty_document"
        assert job["errors"]["junk.bin"]["reason"] in ("unsupported_type", "corrupt_file")
        assert job["errors"]["broken.pdf"]["reason"] == "corrupt_file"


def test_archive_with_escaping_names_and_a_bomb(stack: Stack, collection: str) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("kb/a.txt", PARA)
        zf.writestr("kb/b.md", f"# B\n\n{PARA}")
        zf.writestr("../evil.txt", "escape attempt")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.txt", b"\0" * (64 * 1024 * 1024))
    with stack.client() as c:
        resp = c.post(
            f"/v1/collections/{collection}/documents",
            files=[("files", ("kb.zip", buf.getvalue(), "application/zip"))],
        )
        assert resp.status_code == 202, resp.text
        job = stack.wait_job(c, resp.json()["job_id"])
        assert job["documents"]["kb/a.txt"] == "indexed"
        assert job["documents"]["kb/b.md"] == "indexed"
        assert [e["reason"] for e in job["errors"].values()] == ["unsafe_path"]
        resp = c.post(
            f"/v1/collections/{collection}/documents",
            files=[("files", ("bomb.zip", bomb.getvalue(), "application/zip"))],
        )
        assert resp.status_code == 202, resp.text
        job = stack.wait_job(c, resp.json()["job_id"])
        assert job["state"] == "completed_with_errors"
        assert [e["reason"] for e in job["errors"].values()] == ["archive_ratio_exceeded"]


def test_beir_jsonl_upload(stack: Stack) -> None:
    lines = SCIFACT.read_bytes().splitlines()[:40]
    with stack.client() as c:
        assert c.post("/v1/collections", json={"name": "scifact40"}).status_code == 201
        resp = c.post(
            "/v1/collections/scifact40/documents",
            content=b"\n".join(lines),
            headers={"content-type": "application/x-ndjson"},
        )
        assert resp.status_code == 202, resp.text
        job = stack.wait_job(c, resp.json()["job_id"])
        assert job["counts"] == {"indexed": 40}
        first = json.loads(lines[0])
        doc = c.get(f"/v1/collections/scifact40/documents/{first['_id']}").json()
        assert doc["title"] == first["title"]


def test_delete_removes_every_chunk(stack: Stack, collection: str) -> None:
    with stack.client() as c:
        base = f"/v1/collections/{collection}/documents"
        job = c.post(base, json={"documents": [{"id": "gone", "text": PARA * 20}]}).json()
        stack.wait_job(c, job["job_id"])
        before = _chunks(stack, collection)
        n = c.get(f"{base}/gone").json()["chunk_count"]
        assert c.delete(f"{base}/gone").status_code == 202
        deadline = time.monotonic() + 30
        while c.get(f"{base}/gone").status_code != 404:
            assert time.monotonic() < deadline, "document record never went away"
            time.sleep(0.2)
        assert _chunks(stack, collection) == before - n


def test_tenant_b_cannot_see_or_touch_tenant_a(stack: Stack, collection: str) -> None:
    with stack.client() as a, stack.client(KEY_B) as b:
        job_id = a.post(
            f"/v1/collections/{collection}/documents",
            json={"documents": [{"id": "secret", "text": "tenant A only"}]},
        ).json()["job_id"]
        assert [x["name"] for x in b.get("/v1/collections").json()["collections"]] == []
        for resp in (
            b.get(f"/v1/collections/{collection}"),
            b.get(f"/v1/collections/{collection}/documents/secret"),
            b.delete(f"/v1/collections/{collection}/documents/secret"),
            b.get(f"/v1/jobs/{job_id}"),
            b.post(f"/v1/jobs/{job_id}/cancel"),
        ):
            assert resp.status_code == 404, resp.text
            assert resp.json()["error"]["code"].endswith("not_found")
        # Tenant B may use the same name for its own, separate collection.
        assert b.post("/v1/collections", json={"name": collection}).status_code == 201
        assert b.get(f"/v1/collections/{collection}").json()["chunks"] == 0
        stack.wait_job(a, job_id)


def test_errors_use_one_body(stack: Stack, collection: str) -> None:
    with stack.client() as c, stack.client("wrong-key-00000000000") as bad:
        unauth = bad.get("/v1/collections")
        assert unauth.status_code == 401
        assert set(unauth.json()["error"]) == {"code", "message", "request_id"}
        dup = c.post("/v1/collections", json={"name": collection})
        assert (dup.status_code, dup.json()["error"]["code"]) == (409, "collection_exists")
        odd = c.post(
            f"/v1/collections/{collection}/documents",
            content=b"hello",
            headers={"content-type": "text/plain"},
        )
        assert (odd.status_code, odd.json()["error"]["code"]) == (400, "unsupported_media_type")
        assert "Traceback" not in odd.text


def test_hub_429_and_503_for_a_while_then_recovers(stack: Stack, collection: str) -> None:
    stack.plan.fail_next(2, 429, "embeddings")
    with stack.client() as c:
        resp = c.post(
            f"/v1/collections/{collection}/documents",
            json={"documents": [{"id": f"flaky{i}", "text": f"{PARA} {i}"} for i in range(3)]},
        )
        job = stack.wait_job(c, resp.json()["job_id"])
        assert job["counts"] == {"indexed": 3}, job
        stack.plan.fail_next(3, 503, "embeddings")
        resp = c.post(
            f"/v1/collections/{collection}/documents",
            json={"documents": [{"id": "flaky-503", "text": PARA * 2}]},
        )
        job = stack.wait_job(c, resp.json()["job_id"])
        assert job["counts"] == {"indexed": 1}, job
    assert stack.plan.failed["embeddings"] == 5


def test_worker_sigkilled_mid_document_then_a_new_worker_finishes(stack: Stack) -> None:
    text = "\n\n".join(f"Part {i}. " + PARA * 8 for i in range(120))
    record = {"id": "big", "text": text, "title": "Big"}
    tokenizer = load_bge_small_tokenizer()
    extracted = record_to_document(record, "big", IngestLimits())
    assert not isinstance(extracted, ParseFailure)
    expected = len(chunk_document(extracted, tokenizer))
    with stack.client() as c:
        assert c.post("/v1/collections", json={"name": "crash"}).status_code == 201
        job_id = c.post("/v1/collections/crash/documents", json={"documents": [record]}).json()[
            "job_id"
        ]
        deadline = time.monotonic() + 60
        while c.get("/v1/collections/crash/documents/big").json()["status"] != "embedding":
            assert time.monotonic() < deadline, "the worker never started embedding"
            time.sleep(0.05)
        stack.kill_worker(stack.workers[0])
        time.sleep(1)
        assert c.get("/v1/collections/crash/documents/big").json()["status"] == "embedding"
        assert c.get("/v1/collections/crash").json()["chunks"] == 0
        stack.start_worker()
        job = stack.wait_job(c, job_id, timeout_s=180)
        assert job["counts"] == {"indexed": 1}, job["errors"]
        doc = c.get("/v1/collections/crash/documents/big").json()
        assert doc["chunk_count"] == expected
        assert c.get("/v1/collections/crash").json()["chunks"] == expected
