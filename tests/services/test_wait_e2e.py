"""``?wait=true`` over the real stack (real Redis, hub, Celery worker, Edge store): the answer
comes when the job is terminal and its documents answer queries at once; a timeout is a 202
in time; the per-tenant waiter cap is a 429 that accepted nothing; a client that hangs up
leaves no waiter behind."""

from __future__ import annotations

import io
import re
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.services.stack import KEY_A, METRICS_KEY, Stack, running_stack

pytestmark = pytest.mark.slow

TEXT = "Moss grows on the north side of old oak trees in the {word} valley."


@pytest.fixture(scope="module")
def stack(
    redis_url: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(
        redis_url,
        hub_url,
        tmp_path_factory.mktemp("waitstack"),
        SIEVE_API_WAIT_MAX_PER_TENANT="1",
        SIEVE_API_WAIT_MAX_TIMEOUT_S="30",
        SIEVE_API_WAIT_TIMEOUT_S="25",
    ) as handle:
        with handle.client() as c:
            for name in ("w", "late"):
                assert c.post("/v1/collections", json={"name": name}).status_code == 201
        yield handle


def _found(c: httpx.Client, coll: str, query: str) -> list[str]:
    resp = c.post(f"/v1/collections/{coll}/query", json={"query": query, "rerank": False})
    assert resp.status_code == 200, resp.text
    return [r["document_id"] for r in resp.json()["results"]]


def _waiters(stack: Stack) -> float:
    text = httpx.get(
        f"{stack.api}/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}
    ).text
    m = re.search(r'^sieve_job_waiters\{tenant="team-a"\} (\S+)$', text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def _slow_embeddings(stack: Stack, seconds: float) -> None:
    """The next embeddings call hangs ``seconds`` then fails (retried): a job that lasts."""
    stack.plan.hang_next(1, seconds, "embeddings")


def test_every_upload_framing_waits_for_a_terminal_job_and_reads_its_writes(
    stack: Stack,
) -> None:
    with stack.client() as c:
        records = [{"id": "json-1", "text": TEXT.format(word="zanzibar"), "title": "J"}]
        resp = c.post(
            "/v1/collections/w/documents?wait=true&timeout_s=25", json={"documents": records}
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["documents"] == ["json-1"]
        assert body["job"]["id"] == body["job_id"]
        assert body["job"]["state"] == "completed"
        assert body["job"]["documents"] == {"json-1": "indexed"}
        assert body["job"]["finished_at"] is not None
        assert "json-1" in _found(c, "w", "zanzibar valley moss")

        line = (
            b'{"_id": "jsonl-1", "title": "L", "text": "Glaciers carve the kilimanjaro fjords."}\n'
        )
        resp = c.post(
            "/v1/collections/w/documents?wait=true",
            content=line,
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["job"]["state"] == "completed"
        assert "jsonl-1" in _found(c, "w", "kilimanjaro fjords glaciers")

        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("file-1.txt", "Copper kettles whistle in the timbuktu kitchen at dawn.")
        resp = c.post(
            "/v1/collections/w/documents?wait=1",
            files=[("files", ("pack.zip", archive.getvalue(), "application/zip"))],
        )
        assert resp.status_code == 200, resp.text
        waited = resp.json()
        assert waited["job"]["state"] == "completed", waited
        assert waited["documents"][0] in _found(c, "w", "timbuktu copper kettles")

        resp = c.put(
            "/v1/collections/w/documents/json-1?wait=true",
            json={"text": "Lanterns float over the reykjavik harbour every winter."},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["job"]["state"] == "completed"
        assert "json-1" in _found(c, "w", "reykjavik harbour lanterns")
    assert _waiters(stack) == 0


def test_without_wait_the_answer_is_the_202_as_before(stack: Stack) -> None:
    with stack.client() as c:
        resp = c.post(
            "/v1/collections/w/documents",
            json={"documents": [{"id": "plain", "text": "Plain upload text about herons."}]},
        )
        assert resp.status_code == 202, resp.text
        assert set(resp.json()) == {"job_id", "documents", "unchanged", "failed"}
        stack.wait_job(c, resp.json()["job_id"])


def test_a_failing_document_gives_the_terminal_failed_state(stack: Stack) -> None:
    stack.plan.fail_next(50, 400, "embeddings")  # the hub refuses: not retried, the doc fails
    try:
        with stack.client() as c:
            resp = c.post(
                "/v1/collections/w/documents?wait=true&timeout_s=25",
                json={"documents": [{"id": "doomed", "text": "This one will never embed."}]},
            )
    finally:
        stack.plan.fail_next(0, 400, "embeddings")
    assert resp.status_code == 200, resp.text
    job = resp.json()["job"]
    assert job["state"] == "completed_with_errors", job
    assert job["documents"] == {"doomed": "failed"}
    assert set(job["errors"]["doomed"]) >= {"reason", "message"}


def test_a_timeout_answers_202_in_time_with_where_to_poll(stack: Stack) -> None:
    _slow_embeddings(stack, 4.0)
    with stack.client() as c:
        started = time.monotonic()
        resp = c.post(
            "/v1/collections/w/documents?wait=true&timeout_s=1",
            json={"documents": [{"id": "slow-1", "text": "Slow text about ravens in snow."}]},
        )
        took = time.monotonic() - started
        assert resp.status_code == 202, resp.text
        assert took < 2.5, took
        body = resp.json()
        assert body["job"]["state"] in ("queued", "running")
        assert body["job"]["finished_at"] is None
        assert resp.headers["location"] == f"/v1/jobs/{body['job_id']}"
        assert int(resp.headers["retry-after"]) >= 1
        assert stack.wait_job(c, body["job_id"])["state"] == "completed"
    assert _waiters(stack) == 0


def test_the_waiter_cap_is_a_429_that_accepts_nothing(stack: Stack) -> None:
    _slow_embeddings(stack, 4.0)
    first: dict[str, Any] = {}

    def hold() -> None:
        with stack.client() as c:
            resp = c.post(
                "/v1/collections/w/documents?wait=true&timeout_s=20",
                json={"documents": [{"id": "held", "text": "Held text about owls at night."}]},
            )
            first.update(status=resp.status_code, body=resp.json())

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        deadline = time.monotonic() + 10
        while _waiters(stack) < 1:
            assert time.monotonic() < deadline, "the first request never waited"
            time.sleep(0.05)
        with stack.client() as c:
            resp = c.post(
                "/v1/collections/w/documents?wait=true",
                json={"documents": [{"id": "refused", "text": "Refused text."}]},
            )
            assert resp.status_code == 429, resp.text
            error = resp.json()["error"]
            assert error["code"] == "too_many_waiters"
            assert "SIEVE_API_WAIT_MAX_PER_TENANT" in error["message"]
            assert int(resp.headers["retry-after"]) >= 1
            # Refused before the upload was accepted: nothing of it exists.
            assert c.get("/v1/collections/w/documents/refused").status_code == 404
            # Another tenant has its own slots; waiting without wait=true is not capped.
            plain = c.post(
                "/v1/collections/w/documents",
                json={"documents": [{"id": "unc", "text": "Uncapped text about larks."}]},
            )
            assert plain.status_code == 202
    finally:
        holder.join(timeout=30)
    assert first["status"] == 200, first
    assert first["body"]["job"]["state"] == "completed"
    assert _waiters(stack) == 0


def test_a_client_hanging_up_leaves_no_waiter(stack: Stack) -> None:
    _slow_embeddings(stack, 6.0)
    url = urlsplit(stack.api)
    body = b'{"documents": [{"id": "gone", "text": "Text whose client hangs up."}]}'
    request = (
        b"POST /v1/collections/w/documents?wait=true&timeout_s=25 HTTP/1.1\r\n"
        + f"Host: {url.hostname}\r\nAuthorization: Bearer {KEY_A}\r\n".encode()
        + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 80))
    try:
        sock.sendall(request)
        deadline = time.monotonic() + 10
        while _waiters(stack) < 1:
            assert time.monotonic() < deadline, "the request never waited"
            time.sleep(0.05)
    finally:
        sock.close()
    hung_up = time.monotonic()
    while _waiters(stack) > 0:
        assert time.monotonic() - hung_up < 3, "the waiter outlived its client"
        time.sleep(0.05)
    # The slot is free again: the next wait is admitted (the job itself went on).
    with stack.client() as c:
        resp = c.post(
            "/v1/collections/w/documents?wait=true&timeout_s=25",
            json={"documents": [{"id": "after", "text": "Text after the hang-up, about wrens."}]},
        )
        assert resp.status_code == 200, resp.text
        assert c.get("/v1/collections/w/documents/gone").json()["status"] == "indexed"


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("timeout_s=5", 400, "timeout_s"),
        ("wait=true&timeout_s=31", 400, "timeout_s"),
        ("wait=true&timeout_s=0", 422, None),
        ("wait=perhaps", 422, None),
    ],
)
def test_bad_wait_parameters_are_refused_before_anything_is_accepted(
    stack: Stack, query: str, status: int, field: str | None
) -> None:
    with stack.client() as c:
        resp = c.post(
            f"/v1/collections/w/documents?{query}",
            json={"documents": [{"id": "never", "text": "Never accepted."}]},
        )
        assert resp.status_code == status, resp.text
        error = resp.json()["error"]
        if field is not None:
            assert (error["code"], error["field"]) == ("invalid_wait", field)
        reindex = c.post(f"/v1/collections/w/reindex?{query}", json={"late_interaction": True})
        assert reindex.status_code == status, reindex.text
        assert c.get("/v1/collections/w/documents/never").status_code == 404
        assert c.get("/v1/collections/w").json()["late_interaction"] is False


def test_reindex_waits_for_its_switch(stack: Stack) -> None:
    with stack.client() as c:
        resp = c.post(
            "/v1/collections/late/documents?wait=true",
            json={"documents": [{"id": "l1", "text": "Pelicans dive for sardines off lima."}]},
        )
        assert resp.status_code == 200, resp.text
        resp = c.post(
            "/v1/collections/late/reindex?wait=true&timeout_s=30", json={"late_interaction": True}
        )
        assert resp.status_code == 200, resp.text
        job = resp.json()
        assert (job["kind"], job["state"]) == ("reindex", "completed")
        assert resp.headers["location"] == f"/v1/jobs/{job['id']}"
        # Switched by the time of the answer: the collection serves late interaction.
        assert c.get("/v1/collections/late").json()["late_interaction"] is True
        assert "l1" in _found(c, "late", "pelicans sardines lima")
