"""Each tenant's share of the API process over the real stack: a tenant past its running
requests waits in its own line, past its line gets 429 ``tenant_busy``; another tenant is
answered at once meanwhile (services/api/tenant_gate.py); a tenant's upload past its byte
rate is paced, not refused, and another tenant is answered at once meanwhile
(services/api/tenant_bandwidth.py)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest

from tests.services.stack import KEY_B, METRICS_KEY, Stack, running_stack

pytestmark = pytest.mark.slow

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def stack(
    redis_url: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(
        redis_url,
        hub_url,
        tmp_path_factory.mktemp("gate"),
        SIEVE_API_TENANT_CONCURRENCY="2",
        SIEVE_API_TENANT_QUEUE="1",
        # The other share, bytes: 1 MiB/s with a quarter of a second of it at once (the
        # other tests' bodies fit in that burst).
        SIEVE_API_TENANT_BYTES_PER_S=str(MIB),
        SIEVE_API_TENANT_BURST_S="0.25",
    ) as s:
        yield s


def _slow_body(release: threading.Event, doc_id: str = "held") -> Iterator[bytes]:
    """A JSON upload whose body stops halfway until ``release`` is set."""
    yield b'{"documents": [{"id": "%s", "text": "a request holding its tenant\'s turn' % (
        doc_id.encode()
    )
    release.wait(30)
    yield b' until the test lets it finish"}]}'


def _hold(
    pool: ThreadPoolExecutor,
    client: httpx.Client,
    collection: str,
    doc_id: str,
    release: threading.Event,
) -> Future[httpx.Response]:
    """An upload that holds one of its tenant's turns until ``release`` is set."""
    return pool.submit(
        client.post,
        f"/v1/collections/{collection}/documents",
        content=_slow_body(release, doc_id),
        headers={"content-type": "application/json"},
    )


def test_a_busy_tenant_waits_in_its_own_line_and_another_goes_first(stack: Stack) -> None:
    with stack.client() as a:
        assert a.post("/v1/collections", json={"name": "gate"}).status_code == 201
    release = threading.Event()
    with (
        ThreadPoolExecutor(3) as pool,
        contextlib.ExitStack() as clients,
        stack.client() as a,
        stack.client(KEY_B) as b,
    ):
        # Alone, the tenant may run both of its two turns.
        holding = [
            _hold(pool, clients.enter_context(stack.client()), "gate", f"held{k}", release)
            for k in (1, 2)
        ]
        time.sleep(0.5)  # the uploads are in their handlers, reading their bodies
        with stack.client() as a2:
            queued: Future[httpx.Response] = pool.submit(a2.get, "/v1/collections")
            time.sleep(0.5)
            assert not queued.done(), "the tenant's third request must wait for its turn"
            with stack.client() as a3:
                refused = a3.get("/v1/collections")
            assert refused.status_code == 429, refused.text
            error = refused.json()["error"]
            assert error["code"] == "tenant_busy"
            assert "SIEVE_API_TENANT_CONCURRENCY" in error["message"]
            assert error["request_id"] == refused.headers["x-request-id"]
            assert int(refused.headers["retry-after"]) >= 1
            # /readyz (never in a line) shows the line: two running, one waiting, one refused.
            tenants = a.get("/readyz").json()["pools"]["tenants"]
            assert tenants == {"in_use": 2, "size": 2, "queued": 1, "refused": 1}
            # Another tenant, and the health check, are answered at once.
            started = time.perf_counter()
            assert b.get("/v1/collections").status_code == 200
            assert a.get("/healthz").status_code == 200
            assert time.perf_counter() - started < 5
            assert not queued.done()
            release.set()
            assert [h.result(timeout=30).status_code for h in holding] == [202, 202]
            assert queued.result(timeout=30).status_code == 200
        # Nothing is left held: the tenant's next requests run one after another.
        for _ in range(3):
            assert a.get("/v1/collections").status_code == 200
        assert a.get("/readyz").json()["pools"]["tenants"]["in_use"] == 0
        scrape = a.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}).text
        assert 'sieve_pool_refused_total{pool="tenants"} 1.0' in scrape


def test_the_turns_are_shared_with_another_tenant_at_work(stack: Stack) -> None:
    """Alone a tenant runs both of its turns; with another tenant at work, one each."""
    with stack.client() as a, stack.client(KEY_B) as b:
        assert a.post("/v1/collections", json={"name": "share-a"}).status_code == 201
        assert b.post("/v1/collections", json={"name": "share-b"}).status_code == 201
    a_release, b_release = threading.Event(), threading.Event()
    with (
        ThreadPoolExecutor(4) as pool,
        contextlib.ExitStack() as clients,
        stack.client() as a,
    ):

        def a_client() -> httpx.Client:
            return clients.enter_context(stack.client())

        def b_client() -> httpx.Client:
            return clients.enter_context(stack.client(KEY_B))

        time.sleep(1.5)  # past the window: neither tenant counts as at work
        a_holding = _hold(pool, a_client(), "share-a", "a-held", a_release)
        time.sleep(0.5)
        started = time.perf_counter()
        assert a.get("/v1/collections").status_code == 200, "alone: its second turn is free"
        assert time.perf_counter() - started < 5
        time.sleep(1.5)  # A's peak of two is past the window: it asks for its one held upload
        b_holding = [_hold(pool, b_client(), "share-b", f"b-held{k}", b_release) for k in (1, 2)]
        time.sleep(0.5)
        queued: Future[httpx.Response] = pool.submit(a_client().get, "/v1/collections")
        time.sleep(0.5)
        # Two turns, two tenants at work: one each. B's second upload and A's second
        # request wait in their own lines.
        assert not queued.done(), "beside B at work, A's second request must wait"
        assert a.get("/readyz").json()["pools"]["tenants"]["in_use"] == 2
        assert a.get("/readyz").json()["pools"]["tenants"]["queued"] == 2
        b_release.set()
        assert [h.result(timeout=30).status_code for h in b_holding] == [202, 202]
        a_release.set()
        assert a_holding.result(timeout=30).status_code == 202
        assert queued.result(timeout=30).status_code == 200


def test_waiting_for_a_job_gives_the_turn_back(stack: Stack) -> None:
    """A ``wait=true`` upload polls its job without holding the tenant's one turn."""
    with stack.client() as a, ThreadPoolExecutor(1) as pool:
        a.post("/v1/collections", json={"name": "waits"})
        body = {
            "documents": [{"id": f"w{n}", "text": f"waiting text {n} " * 50} for n in range(20)]
        }
        waiting = pool.submit(
            a.post, "/v1/collections/waits/documents", params={"wait": "true"}, json=body
        )
        deadline = time.monotonic() + 30
        answered = 0
        while not waiting.done() and time.monotonic() < deadline:
            # While the upload waits for its job, the same tenant's requests are answered.
            started = time.perf_counter()
            got = a.get("/v1/collections/waits")
            assert got.status_code == 200, got.text
            # Held behind the waiting upload, it would take as long as the whole job.
            assert time.perf_counter() - started < 1.0
            answered += 1
            time.sleep(0.05)
        done = waiting.result(timeout=60)
        assert done.status_code == 200, done.text
        assert json.loads(done.text)["job"]["state"] == "completed"
        assert answered >= 2, "no request of the tenant was answered while its upload waited"


def test_an_upload_past_the_rate_is_paced_and_another_tenant_is_not(stack: Stack) -> None:
    with stack.client() as a:
        assert a.post("/v1/collections", json={"name": "paced"}).status_code == 201
        before = a.get("/readyz").json()["bandwidth"]
    assert before["bytes_per_s"] == MIB
    blob = "application/octet-stream"
    files = [("files", (f"blob{k}.bin", os.urandom(MIB), blob)) for k in (1, 2)]
    with ThreadPoolExecutor(1) as pool, stack.client() as a, stack.client(KEY_B) as b:
        started = time.perf_counter()
        upload = pool.submit(a.post, "/v1/collections/paced/documents", files=files)
        time.sleep(0.5)
        assert not upload.done(), "2 MiB at 1 MiB/s (0.25 s of burst) takes ~1.75 s"
        b_started = time.perf_counter()
        assert b.get("/v1/collections").status_code == 200
        b_took = time.perf_counter() - b_started
        resp = upload.result(timeout=60)
        took = time.perf_counter() - started
    assert resp.status_code == 202, resp.text
    assert sorted(resp.json()["documents"]) == ["blob1.bin", "blob2.bin"]
    assert took >= 1.5
    assert b_took < took / 2  # B's request did not wait for A's bytes
    with stack.client() as a:
        after = a.get("/readyz").json()["bandwidth"]
    assert after["paced"] > before["paced"]
    assert after["paced_s"] - before["paced_s"] >= 1.0
    assert after["pacing"] == 0
