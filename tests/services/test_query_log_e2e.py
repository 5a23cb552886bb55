"""A collection's opt-in query log over the real stack: sampled after the answer, bounded by
count and age, one tenant's alone, gone with the collection, never failing a query."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import redis_server
from tests.services.stack import KEY_B, METRICS_KEY, Stack, running_stack

pytestmark = pytest.mark.slow

DOCS = [
    {"id": "espresso", "text": "Espresso is coffee brewed by forcing hot water through beans."},
    {"id": "leaf", "text": "Photosynthesis turns sunlight, water and carbon dioxide into sugar."},
]


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of this module alone: the last test makes it refuse writes."""
    with redis_server(tmp_path_factory.mktemp("qlog-redis")) as url:
        yield url


@pytest.fixture(scope="module")
def stack(
    own_redis: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(
        own_redis,
        hub_url,
        tmp_path_factory.mktemp("qlog"),
        SIEVE_QUERY_LOG_MAX_ENTRIES="50",
        SIEVE_QUERY_LOG_DEFAULT_MAX_ENTRIES="20",
        SIEVE_QUERY_LOG_MAX_TTL_S="3600",
        SIEVE_QUERY_LOG_DEFAULT_TTL_S="600",
        SIEVE_QUERY_LOG_MAX_QUERY_CHARS="64",
    ) as handle:
        with handle.client() as c:
            for name in ("kb", "other"):
                assert c.post("/v1/collections", json={"name": name}).status_code == 201
                job = c.post(f"/v1/collections/{name}/documents", json={"documents": DOCS})
                assert handle.wait_job(c, job.json()["job_id"])["counts"] == {"indexed": 2}
        yield handle


def _query(c: httpx.Client, text: str, name: str = "kb", **body: Any) -> None:
    resp = c.post(f"/v1/collections/{name}/query", json={"query": text, **body})
    assert resp.status_code == 200, resp.text


def _entries(c: httpx.Client, name: str = "kb", **params: Any) -> dict[str, Any]:
    resp = c.get(f"/v1/collections/{name}/query-log/entries", params=params)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def _until(read: Callable[[], dict[str, Any]], ok: Callable[[dict[str, Any]], bool]) -> Any:
    """The log is written after the answer: read until ``ok`` (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        out = read()
        if ok(out):
            return out
        if time.monotonic() > deadline:
            pytest.fail(f"the query log never got there: {out}")
        time.sleep(0.05)


def _texts(page: dict[str, Any]) -> list[str]:
    return [e["query"] for e in page["entries"]]


def _dropped(c: httpx.Client) -> float:
    scrape = c.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}).text
    for family in text_string_to_metric_families(scrape):
        if family.name == "sieve_query_log":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels["outcome"] == "dropped":
                    return sample.value
    return 0.0


def test_off_by_default_then_every_query_at_rate_one(stack: Stack) -> None:
    with stack.client() as c:
        state = c.get("/v1/collections/kb/query-log").json()
        assert state == {"name": "kb", "enabled": False, "config": None, "entries": 0}
        _query(c, "before the log was on")
        on = c.put("/v1/collections/kb/query-log", json={"sample_rate": 1.0})
        assert on.status_code == 200, on.text
        assert on.json()["config"] == {"sample_rate": 1.0, "max_entries": 20, "ttl_s": 600}
        _query(c, "how is espresso made", top_k=7)
        _query(c, "how is espresso made", top_k=7)
        _query(c, "what do plants make from sunlight")
        # The query over several collections is logged in each one whose log is on.
        multi = c.post("/v1/query", json={"query": "coffee beans", "collections": ["kb", "other"]})
        assert multi.status_code == 200, multi.text
        page = _until(lambda: _entries(c), lambda p: p["total"] == 3)
        by_text = {e["query"]: e for e in page["entries"]}
        assert set(by_text) == {"how is espresso made", "what do plants make from sunlight",
                                "coffee beans"}  # fmt: skip
        assert by_text["how is espresso made"]["count"] == 2  # one entry, counted twice
        assert by_text["how is espresso made"]["top_k"] == 7
        assert _entries(c, "other")["total"] == 0  # its log is off
        assert c.get("/v1/collections/kb/query-log").json()["entries"] == 3
        # Paged, most recently seen first; a long query keeps its head only.
        _query(c, "photosynthesis " * 20)
        page = _until(lambda: _entries(c, limit=2), lambda p: p["total"] == 4)
        assert page["entries"][0]["query"] == ("photosynthesis " * 20)[:64].strip()
        assert page["next_offset"] == 2
        rest = _entries(c, offset=2, limit=2)
        assert len(rest["entries"]) == 2
        assert rest["next_offset"] is None


def test_rate_zero_logs_nothing_and_the_caps_are_refused(stack: Stack) -> None:
    with stack.client() as c:
        url = "/v1/collections/kb/query-log"
        assert c.put(url, json={"sample_rate": 0.0}).status_code == 200
        for n in range(5):
            _query(c, f"never kept {n}")
        assert c.put(url, json={"sample_rate": 1.0}).status_code == 200
        # Evaluation traffic (sieve tune, sieve eval) says so and is not logged either.
        skip = {"X-Sieve-Query-Log": "skip"}
        resp = c.post("/v1/collections/kb/query", json={"query": "never kept: tune"}, headers=skip)
        assert resp.status_code == 200
        multi = {"query": "never kept: eval", "collections": ["kb"]}
        assert c.post("/v1/query", json=multi, headers=skip).status_code == 200
        _query(c, "the marker query")
        page = _until(lambda: _entries(c), lambda p: "the marker query" in _texts(p))
        assert not [t for t in _texts(page) if t.startswith("never kept")]
        too_many = c.put(url, json={"sample_rate": 1.0, "max_entries": 51})
        assert too_many.status_code == 400, too_many.text
        assert too_many.json()["error"]["field"] == "max_entries"
        too_long = c.put(url, json={"sample_rate": 1.0, "ttl_s": 3601})
        assert too_long.status_code == 400
        assert too_long.json()["error"]["field"] == "ttl_s"
        for bad in ({"sample_rate": 1.5}, {"sample_rate": -0.1}, {"max_entries": 0}, {"x": 1}):
            assert c.put(url, json=bad).status_code == 422, bad
        assert c.put("/v1/collections/nope/query-log", json={}).status_code == 404
        assert c.get("/v1/collections/nope/query-log/entries").status_code == 404


def test_the_count_cap_holds_and_entries_expire(stack: Stack) -> None:
    with stack.client() as c:
        url = "/v1/collections/kb/query-log"
        assert c.put(url, json={"sample_rate": 1.0, "max_entries": 3}).status_code == 200
        for n in range(6):
            _query(c, f"capped {n}")
        page = _until(lambda: _entries(c), lambda p: "capped 5" in _texts(p))
        assert page["total"] == 3
        assert len(page["entries"]) == 3
        assert c.put(url, json={"sample_rate": 1.0, "ttl_s": 1}).status_code == 200
        _query(c, "short lived")
        _until(lambda: _entries(c), lambda p: "short lived" in _texts(p))
        time.sleep(1.5)
        assert _entries(c)["total"] == 0


def test_one_tenants_log_is_its_own_and_goes_with_the_collection(
    stack: Stack, own_redis: str
) -> None:
    with stack.client() as a, stack.client(KEY_B) as b:
        assert a.put("/v1/collections/kb/query-log", json={}).status_code == 200
        _query(a, "a secret of tenant a")
        _until(lambda: _entries(a), lambda p: p["total"] >= 1)
        # Tenant B has no "kb": it cannot read or change A's log.
        assert b.get("/v1/collections/kb/query-log").status_code == 404
        assert b.get("/v1/collections/kb/query-log/entries").status_code == 404
        assert b.delete("/v1/collections/kb/query-log").status_code == 404
        # Its own "kb", logged too, holds only its own queries.
        assert b.post("/v1/collections", json={"name": "kb"}).status_code == 201
        assert b.put("/v1/collections/kb/query-log", json={}).status_code == 200
        _query(b, "tenant b asks")
        page = _until(lambda: _entries(b), lambda p: p["total"] >= 1)
        assert _texts(page) == ["tenant b asks"]
        assert "a secret of tenant a" in _texts(_entries(a))
        # Turned off: its entries are dropped; B's log is untouched.
        off = a.delete("/v1/collections/kb/query-log")
        assert off.status_code == 200
        assert off.json()["enabled"] is False
        assert _entries(a)["total"] == 0
        assert _entries(b)["total"] == 1
        # Deleting the collection deletes its log's keys.
        with redis.Redis.from_url(own_redis, decode_responses=True) as r:
            assert len(r.keys("sieve:querylog:6:team-b:kb:*")) == 3
            assert b.delete("/v1/collections/kb").status_code == 204
            assert r.keys("sieve:querylog:6:team-b:kb:*") == []
        assert b.post("/v1/collections", json={"name": "kb"}).status_code == 201
        assert b.get("/v1/collections/kb/query-log").json()["enabled"] is False
        assert b.delete("/v1/collections/kb").status_code == 204


def test_a_query_is_answered_when_the_log_cannot_be_written(stack: Stack, own_redis: str) -> None:
    with stack.client() as c, redis.Redis.from_url(own_redis) as r:
        assert c.put("/v1/collections/kb/query-log", json={}).status_code == 200
        before = _dropped(c)
        r.config_set("maxmemory-policy", "noeviction")
        used = int(r.info("memory")["used_memory"])
        try:
            r.config_set("maxmemory", str(used // 2))  # full: Redis refuses every write
            _query(c, "asked while redis is full")
            _until(lambda: {"dropped": _dropped(c)}, lambda d: d["dropped"] == before + 1)
        finally:
            r.config_set("maxmemory", "0")
        assert "asked while redis is full" not in _texts(_entries(c))
