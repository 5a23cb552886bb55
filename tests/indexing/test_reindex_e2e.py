"""Re-indexing on the real embedded stack as separate processes (Redis, ``sieve api`` owning
the Edge store, a Celery worker, the real hub behind a proxy that can hang): late
interaction on and off with uploads, a replace and a delete during the re-index, cancel,
collection delete, and kill -9 of the API mid re-index."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.ids import point_id
from indexing.records import CollectionRecord
from ingest.chunker import chunk_document
from ingest.documents import ParseFailure
from ingest.limits import IngestLimits
from ingest.records import record_to_document
from ingest.tokenizer import load_bge_small_tokenizer
from retriever.edge_store import EdgeChunkStore
from services.modelhub.registry import BUNDLED_PINS, bundled_data_dir
from tests.indexing.procstack import ProcStack, proc_stack
from tests.servers import local_hub

pytestmark = pytest.mark.slow

# The bundled bge files registered under a second id (SIEVE_MODELHUB_MODELS): "a new
# embedding model" the hub really serves, without inventing weights.
SECOND_MODEL = "sieve-test/bge-small-copy"

_WORDS = ["alpha", "beta", "gamma", "delta", "sunlight", "sugar", "leaf", "river", "stone"]


def _record(doc_id: str, salt: str = "") -> dict[str, Any]:
    n = sum(map(ord, doc_id + salt))
    words = [_WORDS[(n + i * 7) % len(_WORDS)] for i in range(60)]
    text = f"{doc_id} {salt} " + " ".join(words) + f". Plants turn sunlight into sugar {n}."
    return {"id": doc_id, "title": f"T {doc_id}", "text": text, "metadata": {"n": n}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcStack]:
    root = tmp_path_factory.mktemp("reindex")
    second = {
        "id": SECOND_MODEL,
        "kind": "embed",
        "path": str(bundled_data_dir() / "bge_small_en"),
        "pooling": "cls",
        "sha256": BUNDLED_PINS["bge_small_en"],
    }
    # Small batches: a re-index of 30 documents takes many hub round trips.
    with (
        local_hub(root / "hub", SIEVE_MODELHUB_MODELS=json.dumps([second])) as hub_url,
        proc_stack(hub_url, root, SIEVE_INGEST_TASK_BATCH_DOCS="2") as handle,
    ):
        yield handle


def _create(c: httpx.Client, name: str, **body: object) -> None:
    resp = c.post("/v1/collections", json={"name": name, **body})
    assert resp.status_code == 201, resp.text


def _upload(c: httpx.Client, coll: str, records: list[dict[str, Any]]) -> str:
    resp = c.post(f"/v1/collections/{coll}/documents", json={"documents": records})
    assert resp.status_code == 202, resp.text
    job_id: str = resp.json()["job_id"]
    return job_id


def _reindex(c: httpx.Client, coll: str, **body: object) -> str:
    resp = c.post(f"/v1/collections/{coll}/reindex", json=body)
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["kind"] == "reindex"
    assert resp.headers["location"] == f"/v1/jobs/{job['id']}"
    job_id: str = job["id"]
    return job_id


def _query(c: httpx.Client, coll: str) -> dict[str, Any]:
    resp = c.post(
        f"/v1/collections/{coll}/query",
        json={"query": "plants turn sunlight into sugar", "rerank": False, "top_n": 5},
    )
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def _expected(ns: str, records: dict[str, dict[str, Any]]) -> dict[str, tuple[str, int, str]]:
    """A clean ingest's points: id → (document id, chunk number, text)."""
    tokenizer = load_bge_small_tokenizer()
    out: dict[str, tuple[str, int, str]] = {}
    for doc_id, record in records.items():
        doc = record_to_document(record, doc_id, IngestLimits())
        assert not isinstance(doc, ParseFailure)
        for chunk in chunk_document(doc, tokenizer):
            out[point_id(ns, doc_id, chunk.chunk_no)] = (doc_id, chunk.chunk_no, chunk.text)
    return out


def _check_store(
    stack: ProcStack, coll: str, records: dict[str, dict[str, Any]], *, late: bool
) -> CollectionRecord:
    """The serving generation holds exactly a clean ingest's points; older ones are gone."""
    state = stack.state()
    rec = state.get_collection("team-a", coll)
    state.close()
    assert rec.reindex is None
    expected = _expected(rec.point_ns, records)
    stack.stop("api")
    store = EdgeChunkStore(stack.root / "qdrant")
    try:
        assert store.count(rec.store_name) == len(expected)
        points = {p.id: p for p in store.get(rec.store_name, sorted(expected))}
        assert set(points) == set(expected)
        for pid, (doc_id, chunk_no, text) in expected.items():
            payload = points[pid].payload
            assert (payload.document_id, payload.chunk_no, payload.text) == (doc_id, chunk_no, text)
            assert payload.metadata == records[doc_id]["metadata"]
            assert (points[pid].late is not None) is late
            assert points[pid].sparse is not None
            assert len(points[pid].dense) == rec.dimension
        # No other generation of this collection is left behind.
        others = [
            p.name
            for p in store.root.iterdir()
            if p.name.endswith(rec.point_ns) and p.name != rec.store_name
        ]
        assert others == []
    finally:
        store.close()
    stack.start_api()
    return rec


def _wait_job(c: httpx.Client, job_id: str, timeout_s: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = c.get(f"/v1/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def test_late_interaction_on_then_off_while_writes_and_queries_go_on(stack: ProcStack) -> None:
    records = {f"d{i:02}": _record(f"d{i:02}") for i in range(30)}
    with stack.client() as c:
        _create(c, "rx")
        stack.wait_jobs([_upload(c, "rx", list(records.values()))])
        before = _query(c, "rx")
        assert all(h["scores"].get("late") is None for h in before["results"])

        job_id = _reindex(c, "rx", late_interaction=True)
        view = c.get("/v1/collections/rx").json()
        assert view["reindex"]["job_id"] == job_id
        assert view["late_interaction"] is False  # the old generation still serves

        # Queries keep answering from the old generation until the switch.
        answers: list[dict[str, Any]] = []
        stop = threading.Event()

        def ask() -> None:
            with stack.client() as qc:
                while not stop.is_set():
                    answers.append(_query(qc, "rx"))

        asker = threading.Thread(target=ask)
        asker.start()
        # Uploads, a replace and a delete during the re-index.
        new = {f"n{i}": _record(f"n{i}") for i in range(3)}
        jobs = [_upload(c, "rx", list(new.values()))]
        replaced = _record("d00", salt="replaced")
        resp = c.put("/v1/collections/rx/documents/d00", json=replaced)
        assert resp.status_code == 202, resp.text
        jobs.append(resp.json()["job_id"])
        assert c.delete("/v1/collections/rx/documents/d01").status_code == 202
        during = c.get(f"/v1/jobs/{job_id}").json()
        done = _wait_job(c, job_id)
        stop.set()
        asker.join()
        stack.wait_jobs(jobs)
        assert done["state"] == "completed", done
        assert done["finished_at"] is not None
        assert done["counts"]["done"] >= 30
        assert during["state"] in ("queued", "running"), "the writes came after the re-index"

        # Each answer came whole from one generation, and the switch happened once.
        kinds = []
        for answer in answers:
            lates = {h["scores"].get("late") is not None for h in answer["results"]}
            assert len(lates) == 1, answer
            kinds.append("new" if lates == {True} else "old")
        assert kinds == sorted(kinds, key=lambda k: k == "new"), kinds
        view = c.get("/v1/collections/rx").json()
        assert view["late_interaction"] is True
        assert view["reindex"] is None
        assert view["storage_per_chunk"]["late_tokens"] > 10
        assert all(h["scores"]["late"] is not None for h in _query(c, "rx")["results"])

    final = {**records, **new, "d00": replaced}
    del final["d01"]
    rec = _check_store(stack, "rx", final, late=True)
    assert rec.generation > 0
    assert rec.late_model is not None

    with stack.client() as c:
        assert _wait_job(c, _reindex(c, "rx", late_interaction=False))["state"] == "completed"
        view = c.get("/v1/collections/rx").json()
        assert view["late_interaction"] is False
        assert view["storage_per_chunk"]["late_tokens"] is None
        assert all(h["scores"].get("late") is None for h in _query(c, "rx")["results"])
    _check_store(stack, "rx", final, late=False)


def test_refusals(stack: ProcStack) -> None:
    with stack.client() as c:
        _create(c, "rxr", late_interaction=True)
        stack.wait_jobs([_upload(c, "rxr", [_record(f"r{i}") for i in range(20)])])
        same = c.post("/v1/collections/rxr/reindex", json={})
        assert (same.status_code, same.json()["error"]["code"]) == (400, "no_change")
        unknown = c.post("/v1/collections/rxr/reindex", json={"embedding_model": "no/such"})
        assert unknown.status_code == 400
        assert unknown.json()["error"]["code"] == "unknown_model"
        assert "embedding_model" in unknown.json()["error"]["message"]
        missing = c.post("/v1/collections/nope/reindex", json={"late_interaction": True})
        assert missing.status_code == 404
        # Turning late interaction off probes nothing: the first hub request after this
        # is the re-index's first batch, held for a while.
        stack.plan.hang_next(1, 3.0, "embeddings")
        job_id = _reindex(c, "rxr", late_interaction=False)
        again = c.post("/v1/collections/rxr/reindex", json={"late_interaction": True})
        assert (again.status_code, again.json()["error"]["code"]) == (409, "reindex_in_progress")
        assert _wait_job(c, job_id)["state"] == "completed"


def test_cancel_drops_the_new_generation_and_the_old_keeps_serving(stack: ProcStack) -> None:
    records = {f"c{i}": _record(f"c{i}") for i in range(10)}
    with stack.client() as c:
        _create(c, "rxc", late_interaction=True)
        stack.wait_jobs([_upload(c, "rxc", list(records.values()))])
        before = _query(c, "rxc")
        stack.plan.hang_next(1, 3.0, "embeddings")  # the re-index's first batch
        job_id = _reindex(c, "rxc", late_interaction=False)
        assert c.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
        job = _wait_job(c, job_id)
        assert job["state"] == "cancelled", job
        view = c.get("/v1/collections/rxc").json()
        assert view["late_interaction"] is True
        assert view["reindex"] is None
        assert _query(c, "rxc")["results"] == before["results"]
    _check_store(stack, "rxc", records, late=True)


def test_deleting_the_collection_ends_the_reindex_and_leaves_nothing(stack: ProcStack) -> None:
    with stack.client() as c:
        _create(c, "rxd", late_interaction=True)
        stack.wait_jobs([_upload(c, "rxd", [_record(f"x{i}") for i in range(10)])])
        state = stack.state()
        ns = state.get_collection("team-a", "rxd").store_name
        stack.plan.hang_next(1, 3.0, "embeddings")  # the re-index's first batch
        job_id = _reindex(c, "rxd", late_interaction=False)
        assert c.get(f"/v1/jobs/{job_id}").json()["state"] in ("queued", "running")
        assert c.delete("/v1/collections/rxd").status_code == 204
        job = _wait_job(c, job_id)
        assert job["state"] == "failed"
        assert job["errors"]["reindex"]["reason"] == "collection_deleted"
        assert state.raw().keys("sieve:rx:*:team-a:rxd") == []
        state.close()
    stack.stop("api")
    try:
        left = [p.name for p in (stack.root / "qdrant").iterdir() if p.name.endswith(ns)]
        assert left == []
    finally:
        stack.start_api()


def test_kill_the_api_mid_reindex_then_it_resumes(stack: ProcStack) -> None:
    records = {f"k{i:02}": _record(f"k{i:02}") for i in range(20)}
    with stack.client() as c:
        _create(c, "rxk", late_interaction=True)
        stack.wait_jobs([_upload(c, "rxk", list(records.values()))])
        stack.plan.hang_next(1, 4.0, "embeddings")  # the re-index's first batch
        job_id = _reindex(c, "rxk", late_interaction=False)
        assert c.get(f"/v1/jobs/{job_id}").json()["state"] in ("queued", "running")
    stack.kill("api")
    stack.start_api()
    with stack.client() as c:
        job = _wait_job(c, job_id)
        assert job["state"] == "completed", job
        assert c.get("/v1/collections/rxk").json()["late_interaction"] is False
    state = stack.state()
    # The restarted API took the job over from the dead one (its lease had expired).
    assert state.raw().hget(f"sieve:rx:job:{job_id}", "crashes") == "1"
    state.close()
    _check_store(stack, "rxk", records, late=False)


def test_a_new_embedding_model(stack: ProcStack) -> None:
    records = {f"m{i}": _record(f"m{i}") for i in range(8)}
    with stack.client() as c:
        _create(c, "rxm")
        stack.wait_jobs([_upload(c, "rxm", list(records.values()))])
        sent_before = len(stack.plan.bodies.get("embeddings", []))
        job = _wait_job(c, _reindex(c, "rxm", embedding_model=SECOND_MODEL))
        assert job["state"] == "completed", job
        bodies = [json.loads(b) for b in stack.plan.bodies["embeddings"][sent_before:]]
        assert {b["model"] for b in bodies} == {SECOND_MODEL}
        assert sum(len(b["input"]) for b in bodies) >= len(records)
        view = c.get("/v1/collections/rxm").json()
        assert (view["embedding_model"], view["dimension"]) == (SECOND_MODEL, 384)
        hits = _query(c, "rxm")["results"]
        assert hits
        assert all(h["scores"]["dense"] is not None for h in hits)
    _check_store(stack, "rxm", records, late=False)
