"""A tenant's upload past its byte rate is paced over the real stack, nothing is refused or
lost, and another tenant is answered at once meanwhile (services/api/tenant_bandwidth.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.services.stack import KEY_B, Stack, running_stack

pytestmark = pytest.mark.slow

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def stack(
    redis_url: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(
        redis_url,
        hub_url,
        tmp_path_factory.mktemp("bandwidth"),
        SIEVE_API_TENANT_BYTES_PER_S=str(MIB),
        SIEVE_API_TENANT_BURST_S="0.25",
    ) as s:
        yield s


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
