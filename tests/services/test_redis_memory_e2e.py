"""Redis memory: ``sieve up``'s Redis has a maxmemory with ``noeviction``; the API reports the
pressure in ``/readyz`` and ``/metrics`` before writes fail, and a write Redis refuses as
full is a 503 in the one error body with Retry-After, naming no address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from services.cli.supervisor import Supervisor, UpConfig
from tests.servers import free_port, redis_server
from tests.services.stack import METRICS_KEY, running_stack

pytestmark = pytest.mark.slow


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis of this test alone: its maxmemory is changed under the stack."""
    with redis_server(tmp_path / "redis") as url:
        yield url


def test_sieve_up_runs_redis_with_a_maxmemory_and_no_eviction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIEVE_REDIS_MAXMEMORY_BYTES", str(64 * 1024 * 1024))
    sup = Supervisor(UpConfig(data_dir=tmp_path), echo=lambda _line: None)
    for sub in ("redis", "logs"):  # the data layout ``start`` makes first
        (tmp_path / sub).mkdir()
    sup.redis_port = free_port()
    sup._start_redis()  # the Redis of ``sieve up``, alone
    try:
        client = redis.Redis(port=sup.redis_port, decode_responses=True)
        assert client.config_get("maxmemory") == {"maxmemory": str(64 * 1024 * 1024)}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        client.close()
    finally:
        sup.stop()


def test_memory_pressure_is_reported_and_a_refused_write_is_a_clean_503(
    own_redis: str, hub_url: str, tmp_path: Path
) -> None:
    r = redis.Redis.from_url(own_redis, decode_responses=True)
    r.config_set("maxmemory-policy", "noeviction")
    with r, running_stack(own_redis, hub_url, tmp_path) as stack, stack.client() as c:
        assert c.post("/v1/collections", json={"name": "full"}).status_code == 201
        assert c.get("/readyz").json()["status"] == "ready"
        body = {"documents": [{"id": "x", "text": "a document that arrives when Redis is full"}]}
        try:
            used = int(r.info("memory")["used_memory"])
            r.config_set("maxmemory", str(int(used / 0.9)))  # 90 % used: still writable
            ready = c.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["status"] == "degraded"
            assert ready.json()["reasons"][0].startswith("redis_memory:"), ready.json()
            scrape = c.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}).text
            memory = {
                sample.labels["kind"]: sample.value
                for family in text_string_to_metric_families(scrape)
                if family.name == "sieve_redis_memory_bytes"
                for sample in family.samples
            }
            assert memory["max"] == int(used / 0.9)
            assert memory["used"] >= 0.8 * memory["max"]

            r.config_set("maxmemory", str(used // 2))  # full: Redis refuses every write
            resp = c.post("/v1/collections/full/documents", json=body)
            assert resp.status_code == 503, resp.text
            assert resp.headers["retry-after"] == "30"
            error = resp.json()["error"]
            assert error["code"] == "redis_out_of_memory"
            assert set(error) == {"code", "message", "request_id"}
            port = own_redis.rsplit(":", 1)[1].split("/", maxsplit=1)[0]
            assert "127.0.0.1" not in resp.text
            assert port not in error["message"]
            assert "Traceback" not in resp.text
            assert c.get("/v1/collections").status_code == 200  # reads are still served
        finally:
            r.config_set("maxmemory", "0")
        assert c.get("/readyz").json()["status"] == "ready"
        # Nothing of the refused upload was kept; sent again, it is accepted and indexed.
        assert c.get("/v1/collections/full/documents/x").status_code == 404
        resp = c.post("/v1/collections/full/documents", json=body)
        assert resp.status_code == 202, resp.text
        assert stack.wait_job(c, resp.json()["job_id"])["state"] == "completed"
    r.close()
