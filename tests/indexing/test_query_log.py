"""The query log store over a real Redis: bounded by count and age, deduplicated, scoped."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from core.errors import UpstreamUnavailable
from indexing.feedback import query_id
from indexing.query_log import QueryLogConfig, QueryLogStore

CFG = QueryLogConfig(sample_rate=1.0, max_entries=3, ttl_s=60)


@pytest.fixture
def store(redis_url: str) -> Iterator[QueryLogStore]:
    with redis.Redis.from_url(redis_url) as fresh:
        fresh.flushdb()
    s = QueryLogStore.from_url(redis_url, max_query_chars=20)
    try:
        yield s
    finally:
        s.close()


def _texts(
    store: QueryLogStore, tenant: str = "a", cfg: QueryLogConfig = CFG, now: float | None = None
) -> list[str]:
    return [e.query for e in store.page(tenant, "c", "i1", cfg, limit=100, now=now).entries]


def test_the_count_cap_keeps_the_most_recently_seen(store: QueryLogStore) -> None:
    for n, text in enumerate(["one", "two", "three", "four"]):
        held = store.record("a", "c", "i1", CFG, text, now=1000.0 + n)
        assert held == min(n + 1, 3)
    assert _texts(store, now=1004.0) == ["four", "three", "two"]  # most recently seen first
    # Seeing "two" again makes it the newest; the next new query pushes out "three".
    store.record("a", "c", "i1", CFG, "two", now=1010.0)
    store.record("a", "c", "i1", CFG, "five", now=1011.0)
    page = store.page("a", "c", "i1", CFG, now=1012.0)
    assert [(e.query, e.count) for e in page.entries] == [("five", 1), ("two", 2), ("four", 1)]
    assert page.total == 3
    two = page.entries[1]
    assert (two.first_at, two.last_at, two.id) == (1001.0, 1010.0, query_id("two"))


def test_a_repeated_text_is_one_entry_counted_and_the_text_is_bounded(
    store: QueryLogStore,
) -> None:
    long = "x" * 50
    for _ in range(3):
        store.record("a", "c", "i1", CFG, f"  {long}  ", top_k=7)
    (entry,) = store.page("a", "c", "i1", CFG).entries
    assert entry.query == "x" * 20  # max_query_chars
    assert entry.count == 3
    assert entry.top_k == 7


def test_entries_older_than_the_ttl_are_gone_and_the_keys_expire(
    store: QueryLogStore, redis_url: str
) -> None:
    short = QueryLogConfig(sample_rate=1.0, max_entries=10, ttl_s=1)
    store.record("a", "c", "i1", short, "old")
    time.sleep(0.6)
    store.record("a", "c", "i1", short, "new")
    time.sleep(0.6)  # "old" is 1.2 s old, "new" 0.6 s
    assert _texts(store, cfg=short) == ["new"]
    time.sleep(1.5)
    with redis.Redis.from_url(redis_url) as r:
        assert r.keys("sieve:querylog:*") == []  # an idle log disappears whole


def test_a_smaller_config_holds_at_once_on_read(store: QueryLogStore) -> None:
    for n in range(3):
        store.record("a", "c", "i1", CFG, f"q{n}", now=1000.0 + n)
    one = QueryLogConfig(sample_rate=1.0, max_entries=1, ttl_s=60)
    page = store.page("a", "c", "i1", one, now=1003.0)
    assert ([e.query for e in page.entries], page.total) == (["q2"], 1)


def test_paging_and_scopes(store: QueryLogStore) -> None:
    cfg = QueryLogConfig(sample_rate=1.0, max_entries=10, ttl_s=60)
    for n in range(5):
        store.record("a", "c", "i1", cfg, f"q{n}", now=time.time() + n)
    first = store.page("a", "c", "i1", cfg, offset=0, limit=2)
    rest = store.page("a", "c", "i1", cfg, offset=2, limit=10)
    assert [e.query for e in first.entries + rest.entries] == ["q4", "q3", "q2", "q1", "q0"]
    assert store.page("a", "c", "i1", cfg, limit=0).entries == []
    # Another tenant, another life of the name, a tenant whose name spells a prefix: empty.
    assert _texts(store, tenant="b", cfg=cfg) == []
    assert store.page("a", "c", "i2", cfg).total == 0
    assert store.page("a:c", "", "i1", cfg).total == 0
    store.clear("a", "c", "i1")
    assert store.page("a", "c", "i1", cfg).total == 0


def test_a_redis_that_is_down_is_one_domain_error() -> None:
    from tests.servers import free_port  # noqa: PLC0415

    down = QueryLogStore.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5)
    with pytest.raises(UpstreamUnavailable):
        down.record("a", "c", "i1", CFG, "q")
    with pytest.raises(UpstreamUnavailable):
        down.page("a", "c", "i1", CFG)
    with pytest.raises(UpstreamUnavailable):
        down.clear("a", "c", "i1")
    down.close()
