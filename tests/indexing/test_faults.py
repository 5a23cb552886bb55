"""Fault injection on real processes: deletes, replaces and cancels racing in-flight work,
and kill -9 of the worker, the API (the store writer) and Redis.

Every test ends on the same three checks: the store holds exactly the point ids a clean
ingest of the surviving documents holds (no orphan, none missing), deleted documents are
neither listed nor returned by queries, and every job reached a terminal state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.settings import WorkerSettings
from indexing.changes import delete_document
from indexing.records import DocStatus, store_name_for
from services.worker.celery_app import make_celery
from services.worker.celery_queue import CeleryTaskQueue
from tests.indexing.procstack import ProcStack, expected_point_ids, proc_stack

pytestmark = pytest.mark.slow

TENANT = "team-a"
_WORDS = [
    "cell",
    "membrane",
    "protein",
    "enzyme",
    "receptor",
    "signal",
    "pathway",
    "binding",
    "kinase",
]


def _record(doc_id: str, salt: str = "", paragraphs: int = 2) -> dict[str, Any]:
    body = "\n\n".join(
        f"{doc_id} {salt} part {p}: " + " ".join(_WORDS[(p + i) % len(_WORDS)] for i in range(60))
        for p in range(paragraphs)
    )
    return {"title": f"Title {doc_id}", "text": f"marker{doc_id.replace('-', '')}{salt} {body}"}


@pytest.fixture(scope="module")
def stack(hub_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcStack]:
    with proc_stack(hub_url, tmp_path_factory.mktemp("faults")) as handle:
        yield handle


def _collection(c: httpx.Client, name: str) -> str:
    assert c.post("/v1/collections", json={"name": name}).status_code == 201
    return store_name_for(TENANT, name)


def _upload(c: httpx.Client, coll: str, records: dict[str, dict[str, Any]]) -> str:
    body = {"documents": [{"id": i, **r} for i, r in records.items()]}
    resp = c.post(f"/v1/collections/{coll}/documents", json=body)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["job_id"])


def _wait_status(c: httpx.Client, coll: str, doc_id: str, wanted: set[str]) -> str:
    deadline = time.monotonic() + 90
    while True:
        status = c.get(f"/v1/collections/{coll}/documents/{doc_id}").json().get("status", "")
        if status in wanted:
            return str(status)
        assert time.monotonic() < deadline, f"{doc_id} never reached {wanted} (last {status})"
        time.sleep(0.02)


def _check(
    stack: ProcStack,
    coll: str,
    alive: dict[str, dict[str, Any]],
    deleted: list[str],
    jobs: list[str],
) -> dict[str, Any]:
    """The three checks; returns the finished jobs."""
    finished = stack.wait_jobs(jobs)
    store = store_name_for(TENANT, coll)
    expected = expected_point_ids(store, alive)
    count, present = stack.point_ids(store, expected)
    assert (count, present) == (len(expected), expected)
    with stack.client() as c:
        listed = c.get(f"/v1/collections/{coll}/documents", params={"limit": 1000}).json()
        indexed = {d["id"] for d in listed["documents"] if d["status"] == "indexed"}
        assert indexed == set(alive), listed
        assert not {d["id"] for d in listed["documents"]} & set(deleted)
        for doc_id in deleted:
            assert c.get(f"/v1/collections/{coll}/documents/{doc_id}").status_code == 404
            hits = c.post(
                f"/v1/collections/{coll}/query",
                json={"query": f"marker{doc_id.replace('-', '')}", "rerank": False, "top_n": 5},
            ).json()["results"]
            assert doc_id not in {h["document_id"] for h in hits}
    return finished


def test_delete_while_queued_parsing_embedding_and_writing(stack: ProcStack) -> None:
    alive = {f"keep-{i}": _record(f"keep-{i}") for i in range(3)}
    with stack.client() as c:
        coll = "deletes"
        _collection(c, coll)
        jobs = [_upload(c, coll, alive)]
        stack.wait_jobs(jobs)
        # queued: the worker is paused, so the document waits in the queue.
        stack.pause("worker")
        jobs.append(_upload(c, coll, {"d-queued": _record("d-queued")}))
        assert c.delete(f"/v1/collections/{coll}/documents/d-queued").status_code == 202
        stack.resume("worker")
        # parsing / embedding: the hub holds embedding requests, so the document is in flight.
        stack.plan.hang_next(4, 1.5, endpoint="embeddings")
        big = {"d-parsing": _record("d-parsing", paragraphs=400), "d-embedding": _record("d-e")}
        jobs.append(_upload(c, coll, big))
        _wait_status(c, coll, "d-parsing", {"parsing", "embedding"})
        assert c.delete(f"/v1/collections/{coll}/documents/d-parsing").status_code == 202
        _wait_status(c, coll, "d-embedding", {"embedding"})
        assert c.delete(f"/v1/collections/{coll}/documents/d-embedding").status_code == 202
        # writing: the store writer (the API) is paused with the points in its queue; the
        # delete goes through the same function the DELETE route calls.
        jobs.append(_upload_paused(stack, coll, "d-writing"))
    _check(stack, coll, alive, ["d-queued", "d-parsing", "d-embedding", "d-writing"], jobs)


def _upload_paused(stack: ProcStack, coll: str, doc_id: str) -> str:
    """Upload, pause the API (the store writer) so the points wait, then delete."""
    with stack.client() as c:
        job = _upload(c, coll, {doc_id: _record(doc_id)})
    stack.pause("api")
    state = stack.state()
    queue = CeleryTaskQueue(
        make_celery(stack.env["SIEVE_REDIS_URL"], WorkerSettings()), state.raw()
    )
    deadline = time.monotonic() + 90
    while (doc := state.find_document(TENANT, coll, doc_id)) is None or (
        doc.status is not DocStatus.WRITING
    ):
        if doc is not None and doc.status is DocStatus.INDEXED:
            pytest.fail("the paused store writer wrote a document")
        assert time.monotonic() < deadline, f"{doc_id} never reached writing"
        time.sleep(0.05)
    delete_document(state, queue, tenant=TENANT, collection=coll, doc_id=doc_id)
    state.close()
    stack.resume("api")
    return job


def test_put_before_the_first_job_ran_supersedes_it_and_both_jobs_end(stack: ProcStack) -> None:
    with stack.client() as c:
        coll = "supersede"
        _collection(c, coll)
        stack.pause("worker")
        first = _upload(c, coll, {"x": _record("x", "v1", paragraphs=6)})
        newer = {"x": _record("x", "v2")}
        second = c.put(f"/v1/collections/{coll}/documents/x", json=newer["x"]).json()["job_id"]
        stack.resume("worker")
    jobs = _check(stack, coll, newer, [], [first, second])
    assert jobs[first]["documents"] == {"x": "superseded"}
    assert jobs[first]["state"] == "completed"
    assert jobs[second]["counts"] == {"indexed": 1}


def test_cancel_then_delete_during_embedding_ends_the_job(stack: ProcStack) -> None:
    with stack.client() as c:
        coll = "cancels"
        _collection(c, coll)
        stack.plan.hang_next(3, 1.0, endpoint="embeddings")
        job = _upload(c, coll, {"c1": _record("c1"), "c2": _record("c2")})
        _wait_status(c, coll, "c1", {"embedding"})
        assert c.post(f"/v1/jobs/{job}/cancel").status_code == 200
        assert c.delete(f"/v1/collections/{coll}/documents/c1").status_code == 202
    finished = _check(stack, coll, {}, ["c1"], [job])
    assert finished[job]["state"] == "cancelled", finished[job]
    assert finished[job]["documents"]["c1"] == "deleted"


def test_kill_worker_mid_batch_recovers_in_seconds(stack: ProcStack) -> None:
    docs = {f"w-{i}": _record(f"w-{i}", paragraphs=3) for i in range(40)}
    with stack.client() as c:
        coll = "killworker"
        _collection(c, coll)
        stack.plan.hang_next(2, 1.0, endpoint="embeddings")
        job = _upload(c, coll, docs)
        _wait_status(c, coll, "w-0", {"parsing", "embedding"})
        stack.kill("worker")
        killed = time.time()
        stack.start_worker()
    done = _check(stack, coll, docs, [], [job])[job]["finished_at"]
    print(f"\nkill -9 worker: the job finished {done - killed:.1f}s after the kill")


def test_kill_api_during_store_writes_loses_and_duplicates_nothing(stack: ProcStack) -> None:
    docs = {f"a-{i}": _record(f"a-{i}", paragraphs=3) for i in range(30)}
    with stack.client() as c:
        coll = "killapi"
        _collection(c, coll)
        job = _upload(c, coll, docs)
    state = stack.state()
    stack.pause("api")
    deadline = time.monotonic() + 120
    while state.document_counts(TENANT, coll).get("writing", 0) < 10:
        assert time.monotonic() < deadline, state.document_counts(TENANT, coll)
        time.sleep(0.05)
    stack.resume("api")
    time.sleep(0.05)  # let it take a write in hand
    stack.kill("api")
    killed = time.time()
    stack.start_api()
    done = _check(stack, coll, docs, [], [job])[job]["finished_at"]
    print(f"\nkill -9 api: the job finished {done - killed:.1f}s after the kill")
    state.close()


def test_kill_redis_mid_ingest_loses_nothing(stack: ProcStack) -> None:
    docs = {f"r-{i}": _record(f"r-{i}", paragraphs=2) for i in range(40)}
    with stack.client() as c:
        coll = "killredis"
        _collection(c, coll)
        job = _upload(c, coll, docs)
        _wait_status(c, coll, "r-0", {"embedding", "writing", "indexed"})
    stack.kill("redis")
    time.sleep(1)
    stack.start_redis()
    restarted = time.time()
    done = _check(stack, coll, docs, [], [job])[job]["finished_at"]
    print(f"\nkill -9 redis: the job finished {done - restarted:.1f}s after the restart")


def test_a_backlog_longer_than_the_owner_ttl_fails_nothing(stack: ProcStack) -> None:
    # One worker, 120 documents, a 2 s owner TTL: most of them wait far longer than the
    # TTL in the queue. Waiting is not a stall: nothing is requeued, nothing fails.
    docs = {f"b-{i}": _record(f"b-{i}", paragraphs=1) for i in range(120)}
    with stack.client() as c:
        coll = "backlog"
        _collection(c, coll)
        job = _upload(c, coll, docs)
    state = stack.state()
    depths = []
    broker = state.raw()
    while broker.llen("ingest"):
        depths.append(int(broker.llen("ingest")))
        time.sleep(0.2)
    finished = _check(stack, coll, docs, [], [job])
    assert finished[job]["counts"] == {"indexed": len(docs)}
    # The queue only ever shrank: no pass added messages for documents that were waiting.
    assert depths == sorted(depths, reverse=True), depths
    state.close()


def test_restart_recovery_sends_what_a_crash_lost(stack: ProcStack) -> None:
    """Queued documents whose messages vanished (a crash between the record and the send)
    are sent again by the recovery pass at start-up."""
    docs = {f"l-{i}": _record(f"l-{i}") for i in range(5)}
    with stack.client() as c:
        coll = "lost"
        _collection(c, coll)
        stack.stop("worker")
        job = _upload(c, coll, docs)
    state = stack.state()
    state.raw().delete("ingest")  # the messages are gone
    stack.kill("api")
    stack.start_api()
    stack.start_worker()
    _check(stack, coll, docs, [], [job])
    state.close()
