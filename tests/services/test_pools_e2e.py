"""Cheap work never waits behind expensive work (issue 19, items 2 and 4), over the real API.

Six real archive uploads fill the CPU pool (2 threads + 4 queued); on the old code they
held all six threads of asyncio's default executor, which every Redis call shared too.
"""

from __future__ import annotations

import io
import os
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services.stack import KEY_B, Stack, running_stack

pytestmark = pytest.mark.slow

KIB = 1024
CPU_THREADS, CPU_QUEUE, RETRY_AFTER = 2, 4, 7
BUDGET_BYTES, BUDGET_MEMBERS = 3 * 1024 * KIB, 10_000
SLOW_MEMBERS = 5_100


@pytest.fixture(scope="module")
def stack(
    redis_url: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(
        redis_url,
        hub_url,
        tmp_path_factory.mktemp("pools"),
        SIEVE_API_CPU_THREADS=str(CPU_THREADS),
        # Tenant A fills the pool with more uploads at once than its in-flight quota allows.
        SIEVE_QUOTA_UPLOADS_IN_FLIGHT="16",
        # ... and past its share of the event loop (the tenant line comes before the pool).
        SIEVE_API_TENANT_CONCURRENCY="16",
        SIEVE_API_CPU_QUEUE=str(CPU_QUEUE),
        SIEVE_API_BUSY_RETRY_AFTER_S=str(RETRY_AFTER),
        SIEVE_API_MAX_EXPANDED_BYTES=str(BUDGET_BYTES),
        SIEVE_API_MAX_EXPANDED_MEMBERS=str(BUDGET_MEMBERS),
    ) as handle:
        with handle.client() as c:
            assert c.post("/v1/collections", json={"name": "p"}).status_code == 201
        with handle.client(KEY_B) as c:
            assert c.post("/v1/collections", json={"name": "b"}).status_code == 201
        yield handle


def _tar_gz(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _slow_archive(n: int) -> bytes:
    """``n`` tiny members, the last one a second ``0.txt``: real expansion and staging work
    on the CPU pool, then a 400 ``duplicate_id`` that leaves nothing behind."""
    members = [(f"{i}.txt", f"member {i}\n".encode()) for i in range(n)]
    return _tar_gz([*members, ("0.txt", b"again\n")])


@pytest.fixture(scope="module")
def slow_archive() -> bytes:
    return _slow_archive(SLOW_MEMBERS)


def _files(*archives: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (name, data, "application/gzip")) for name, data in archives]


def _pools(c: httpx.Client) -> dict[str, dict[str, int]]:
    body: dict[str, Any] = c.get("/readyz").json()
    pools: dict[str, dict[str, int]] = body["pools"]
    return pools


def _blob_files(stack: Stack) -> list[Path]:
    return [p for p in (stack.root / "blobs").rglob("*") if p.is_file()]


def test_a_full_cpu_pool_refuses_503_while_cheap_reads_answer_at_once(
    stack: Stack, slow_archive: bytes
) -> None:
    archive = slow_archive
    results: list[int] = []

    def occupy() -> None:
        with stack.client() as c:
            resp = c.post(
                "/v1/collections/p/documents",
                files=_files(("slow.tar.gz", archive)),
                timeout=300,
            )
            results.append(resp.status_code)

    occupants = [threading.Thread(target=occupy) for _ in range(CPU_THREADS + CPU_QUEUE)]
    for t in occupants:
        t.start()
    try:
        with stack.client() as a, stack.client(KEY_B) as b:
            deadline = time.monotonic() + 60
            while (cpu := _pools(a)["cpu"])["in_use"] + cpu["queued"] < len(occupants):
                assert time.monotonic() < deadline, f"the CPU pool never filled: {cpu}"
                time.sleep(0.02)
            assert cpu["in_use"] == cpu["size"] == CPU_THREADS
            assert cpu["queued"] == CPU_QUEUE

            started = time.monotonic()
            listing = b.get("/v1/collections")
            listed_s = time.monotonic() - started
            assert listing.status_code == 200
            assert [col["name"] for col in listing.json()["collections"]] == ["b"]
            # 5 ms when idle; on the old code it waited for a free executor thread.
            assert listed_s < 1.0, f"GET /v1/collections took {listed_s:.2f}s"

            small = _tar_gz([("x.txt", b"a small archive\n")])
            refused = a.post("/v1/collections/p/documents", files=_files(("x.tar.gz", small)))
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == str(RETRY_AFTER)
            error = refused.json()["error"]
            assert error["code"] == "cpu_pool_full"
            assert "SIEVE_API_CPU_THREADS" in error["message"]
            assert set(error) >= {"code", "message", "request_id"}
            assert _pools(a)["cpu"]["refused"] >= 1
            assert "127.0.0.1" not in refused.text
    finally:
        for t in occupants:
            t.join(timeout=300)
    assert results == [400] * len(occupants)  # duplicate_id: refused after the work
    with stack.client() as c:
        assert c.get("/v1/collections/p/documents").json()["total"] == 0
        cpu = _pools(c)["cpu"]
        assert (cpu["in_use"], cpu["queued"]) == (0, 0)
    # Every member was staged and the refusals discarded them all: no blob is left.
    assert _blob_files(stack) == []


def test_archives_of_one_request_share_one_expansion_budget(stack: Stack) -> None:
    # Each archive alone is well within the budget; the three together are over it.
    third = BUDGET_BYTES * 4 // 10
    # Hex text: it compresses about 2x, far from the ratio limit of one archive.
    archives = [
        (f"part{n}.tar.gz", _tar_gz([(f"part{n}/data.txt", os.urandom(third // 2).hex().encode())]))
        for n in range(3)
    ]
    with stack.client() as c:
        resp = c.post("/v1/collections/p/documents", files=_files(*archives))
        assert resp.status_code == 413, resp.text
        error = resp.json()["error"]
        assert error["code"] == "request_expansion_too_large"
        assert "SIEVE_API_MAX_EXPANDED_BYTES" in error["message"]
        assert str(BUDGET_BYTES) in error["message"]
        # Two of them are fine in one request.
        ok = c.post("/v1/collections/p/documents", files=_files(*archives[:2]))
        assert ok.status_code == 202, ok.text
        assert sorted(ok.json()["documents"]) == ["part0/data.txt", "part1/data.txt"]


def test_archives_of_one_request_share_one_member_budget(stack: Stack, slow_archive: bytes) -> None:
    # One archive of 5,101 members is within the 10,000 of the request; two are not.
    before = {p.name for p in _blob_files(stack)}
    with stack.client() as c:
        resp = c.post(
            "/v1/collections/p/documents",
            files=_files(("one.tar.gz", slow_archive), ("two.tar.gz", slow_archive)),
        )
        assert resp.status_code == 413, resp.text
        error = resp.json()["error"]
        assert error["code"] == "request_too_many_members"
        assert "SIEVE_API_MAX_EXPANDED_MEMBERS" in error["message"]
        listed = c.get("/v1/collections/p/documents", params={"limit": 1000}).json()
        assert not any(d["id"].endswith(".txt") and "/" not in d["id"] for d in listed["documents"])
    assert {p.name for p in _blob_files(stack)} == before
