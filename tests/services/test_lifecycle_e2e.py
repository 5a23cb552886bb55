"""The lifecycle's edges end to end (real Redis, hub, Celery worker, Edge store over HTTP):
a re-upload that fails keeps the version served, and an upload racing a collection delete
never shows up in a collection created again with the same name."""

from __future__ import annotations

import io
import random
import threading
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.services.stack import Stack, running_stack

pytestmark = pytest.mark.slow

PARA = (
    "Retrieval augmented generation grounds a language model in documents. "
    "A first stage recalls candidates cheaply; a second stage reranks them precisely. "
)
# Each document's own words, so a query finds exactly the version that is served.
OLD = {
    "rec": "Heliotrope moths migrate across the valley every autumn.",
    "put": "Basalt columns form when thick lava flows cool slowly.",
    "kb/link.txt": "Copper kettles were hammered by hand in the old foundry.",
    "kb/empty.txt": "Glacier meltwater feeds the turquoise lakes in summer.",
}


@pytest.fixture(scope="module")
def stack(
    redis_url: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(redis_url, hub_url, tmp_path_factory.mktemp("lifecycle")) as handle:
        yield handle


def _zip(members: list[tuple[zipfile.ZipInfo | str, str]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, text in members:
            zf.writestr(info, text)
    return buf.getvalue()


def _symlink(path: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(path)
    info.external_attr = 0o120777 << 16  # a symbolic link: refused at upload
    return info


def _served(c: httpx.Client, name: str, text: str) -> set[str]:
    """The ids of the documents a query for ``text`` returns, over the hit's own words."""
    resp = c.post(f"/v1/collections/{name}/query", json={"query": text, "top_n": 10})
    assert resp.status_code == 200, resp.text
    return {h["document_id"] for h in resp.json()["results"] if text[:40] in h["text"]}


def test_a_failed_reupload_keeps_the_indexed_version(stack: Stack) -> None:
    name = "reup"
    with stack.client() as c:
        assert c.post("/v1/collections", json={"name": name}).status_code == 201
        base = f"/v1/collections/{name}/documents"
        records = [{"id": i, "text": OLD[i]} for i in ("rec", "put")]
        job = c.post(base, json={"documents": records}).json()
        assert stack.wait_job(c, job["job_id"])["counts"] == {"indexed": 2}
        archive = _zip([(p, OLD[p]) for p in ("kb/link.txt", "kb/empty.txt")])
        job = c.post(base, files=[("files", ("kb.zip", archive, "application/zip"))]).json()
        assert stack.wait_job(c, job["job_id"])["counts"] == {"indexed": 2}
        before = {i: c.get(f"{base}/{i}").json() for i in OLD}
        assert all(d["status"] == "indexed" and d["chunk_count"] >= 1 for d in before.values())

        # At upload: an invalid record with the id of an indexed one.
        bad = c.post(base, json={"documents": [{"id": "rec", "text": 5}]})
        assert bad.status_code == 202, bad.text
        assert bad.json()["failed"] == {"rec": "invalid_record"}
        # In the worker: a replace with an empty file (empty_document).
        put = c.put(f"{base}/put", files=[("files", ("put.txt", b"", "text/plain"))])
        assert put.status_code == 202, put.text
        # An archive: a member refused at upload (a symlink) and one empty, both at the
        # paths of indexed documents.
        archive = _zip([(_symlink("kb/link.txt"), "/etc/passwd"), ("kb/empty.txt", "")])
        arc = c.post(base, files=[("files", ("kb.zip", archive, "application/zip"))])
        assert arc.status_code == 202, arc.text
        assert arc.json()["failed"] == {"kb/link.txt": "unsafe_path"}

        jobs = {
            "rec": stack.wait_job(c, bad.json()["job_id"]),
            "put": stack.wait_job(c, put.json()["job_id"]),
            "kb/link.txt": None,
            "kb/empty.txt": stack.wait_job(c, arc.json()["job_id"]),
        }
        jobs["kb/link.txt"] = jobs["kb/empty.txt"]
        reasons = {
            "rec": "invalid_record",
            "put": "empty_document",
            "kb/link.txt": "unsafe_path",
            "kb/empty.txt": "empty_document",
        }
        for doc_id, job_view in jobs.items():
            assert job_view is not None
            assert job_view["state"] == "completed_with_errors", job_view
            assert job_view["documents"][doc_id] == "failed", job_view
            assert job_view["errors"][doc_id]["reason"] == reasons[doc_id], job_view
            now = c.get(f"{base}/{doc_id}").json()
            # The record is the version served, as it was: never failed with live points.
            assert now == before[doc_id], (doc_id, now)
            assert _served(c, name, OLD[doc_id]) == {doc_id}
        assert c.get(f"/v1/collections/{name}").json()["documents_by_status"] == {"indexed": 4}


def _upload_until(
    stack: Stack, name: str, tag: str, stop: threading.Event, out: list[tuple[int, Any]]
) -> None:
    n = 0
    with stack.client() as c:
        while not stop.is_set():
            docs = [{"id": f"{tag}-{n}-{k}", "text": f"{tag} {n} {k}. {PARA}"} for k in range(12)]
            resp = c.post(f"/v1/collections/{name}/documents", json={"documents": docs})
            out.append((resp.status_code, resp.json()))
            n += 1


def test_uploads_racing_a_delete_never_reach_the_collection_created_again(stack: Stack) -> None:
    name = "race"
    rng = random.Random(19)
    accepted_jobs: list[str] = []
    landed = 0
    with stack.client() as c:
        assert c.post("/v1/collections", json={"name": name}).status_code == 201
        for i in range(10):
            stop = threading.Event()
            results: list[list[tuple[int, Any]]] = [[], []]
            threads = [
                threading.Thread(
                    target=_upload_until, args=(stack, name, f"g{i}t{t}", stop, results[t])
                )
                for t in range(2)
            ]
            for th in threads:
                th.start()
            # Once an upload landed, while the next ones are on their way.
            deadline = time.monotonic() + 60
            while not any(code == 202 for r in results for code, _ in r):
                assert time.monotonic() < deadline, results
                time.sleep(0.01)
            stop.wait(rng.uniform(0.0, 0.2))
            assert c.delete(f"/v1/collections/{name}").status_code == 204
            stop.set()
            for th in threads:
                th.join(timeout=60)
            # Every upload of this round was answered before the name is created again.
            codes = {code for r in results for code, _ in r}
            assert codes <= {202, 404}, results
            landed += sum(code == 202 for r in results for code, _ in r)
            accepted_jobs += [b["job_id"] for r in results for code, b in r if code == 202]
            assert c.post("/v1/collections", json={"name": name}).status_code == 201
            listed = c.get(f"/v1/collections/{name}/documents").json()
            assert listed["total"] == 0, (i, listed["documents"][:3])
        assert landed > 0  # the rounds did race uploads that were accepted
        for job_id in accepted_jobs:  # every job of a deleted incarnation still ends
            stack.wait_job(c, job_id)
        # Late work of the old incarnations (tasks, store writes) added nothing either.
        assert c.get(f"/v1/collections/{name}").json()["chunks"] == 0
        assert c.get(f"/v1/collections/{name}/documents").json()["total"] == 0
        fresh = [{"id": "fresh", "text": f"fresh start. {PARA}"}]
        job = c.post(f"/v1/collections/{name}/documents", json={"documents": fresh}).json()
        assert stack.wait_job(c, job["job_id"])["counts"] == {"indexed": 1}
        resp = c.post(f"/v1/collections/{name}/query", json={"query": PARA, "top_n": 20})
        assert {h["document_id"] for h in resp.json()["results"]} == {"fresh"}
        assert c.get(f"/v1/collections/{name}").json()["documents_by_status"] == {"indexed": 1}
