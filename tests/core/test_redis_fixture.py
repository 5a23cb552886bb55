"""The Redis fixture later issues build on: prove a real round trip now."""

from __future__ import annotations

import redis


def test_redis_round_trip_on_own_server(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
        client.set("sieve:probe", "ok")
        assert client.get("sieve:probe") == b"ok"
        assert client.incr("sieve:counter") == 1
        # Not the machine's shared Redis on the default port.
        assert client.connection_pool.connection_kwargs["port"] != 6379
        assert client.config_get("appendonly")["appendonly"] == "yes"
    finally:
        client.close()
