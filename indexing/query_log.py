"""A collection's opt-in query log: queries as users really send them, for ``sieve tune``.

Off unless the collection's owner turns it on (``PUT /v1/collections/{c}/query-log``,
stored on the collection's record as :class:`QueryLogConfig`). Then the query route keeps a
``sample_rate`` share of its queries, after the answer is sent. Kept in Redis per
(tenant, collection, incarnation), so no tenant reads another's and a collection created
again under the name starts empty: a hash of entries by query id (the id feedback uses,
``indexing.feedback.query_id``), a hash of how often each was seen, and a sorted set of
the ids by when they were last seen. One Lua script records a query: it drops entries
older than ``ttl_s``, adds the query (or counts it again: a repeated text is one entry),
trims to ``max_entries`` (least recently seen first) and sets the keys to expire ``ttl_s``
after this write, so an idle log disappears whole.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Annotated, Any, cast

import redis
from pydantic import BaseModel, ConfigDict, Field

from core.errors import UpstreamUnavailable
from indexing.feedback import query_id

__all__ = ["QueryLogConfig", "QueryLogEntry", "QueryLogPage", "QueryLogStore"]

_PREFIX = "sieve:querylog"

# KEYS: entries hash, counts hash, order zset. ARGV[1]: the oldest last-seen time kept,
# ARGV[2]: the most entries kept. Reads apply both too, so a config made smaller holds at once.
_BOUNDS = """
local h, c, z = KEYS[1], KEYS[2], KEYS[3]
local function drop(ids)
  for _, id in ipairs(ids) do
    redis.call('ZREM', z, id)
    redis.call('HDEL', h, id)
    redis.call('HDEL', c, id)
  end
end
local function bound()
  drop(redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. ARGV[1]))
  local n = redis.call('ZCARD', z)
  local cap = tonumber(ARGV[2])
  if n > cap then
    drop(redis.call('ZRANGE', z, 0, n - cap - 1))
    n = cap
  end
  return n
end
"""
# ARGV[3..]: id, entry JSON, now, ttl_s. Returns the entries held.
_RECORD = (
    _BOUNDS
    + """
redis.call('HSETNX', h, ARGV[3], ARGV[4])
redis.call('HINCRBY', c, ARGV[3], 1)
redis.call('ZADD', z, ARGV[5], ARGV[3])
local n = bound()
for _, k in ipairs(KEYS) do redis.call('EXPIRE', k, ARGV[6]) end
return n
"""
)
# ARGV[3..]: offset, limit. Returns total, then (entry, count, last seen) per entry.
_PAGE = (
    _BOUNDS
    + """
local out = {bound()}
local first, count = tonumber(ARGV[3]), tonumber(ARGV[4])
if count < 1 then return out end  -- ZREVRANGE 0 -1 would be every entry
local rows = redis.call('ZREVRANGE', z, first, first + count - 1, 'WITHSCORES')
for i = 1, #rows, 2 do
  local entry = redis.call('HGET', h, rows[i])
  if entry then
    table.insert(out, entry)
    table.insert(out, redis.call('HGET', c, rows[i]) or '1')
    table.insert(out, rows[i + 1])
  end
end
return out
"""
)


class QueryLogConfig(BaseModel):
    """A collection's query log: which share of queries it keeps, how many, how long."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_rate: Annotated[float, Field(ge=0.0, le=1.0)]
    max_entries: Annotated[int, Field(ge=1)]
    ttl_s: Annotated[int, Field(ge=1)]


class QueryLogEntry(BaseModel):
    """One logged query text: when first and last seen, how often, its last ``top_k``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    query: str
    top_k: int | None = None
    first_at: float
    last_at: float = 0.0
    count: int = 1


class QueryLogPage(BaseModel):
    """Entries, most recently seen first; ``total``: how many the log holds."""

    entries: list[QueryLogEntry]
    total: int


class QueryLogStore:
    """Query logs per (tenant, collection, incarnation) (sync, from a thread)."""

    def __init__(self, client: redis.Redis, *, max_query_chars: int = 1000) -> None:
        self._r = client
        self._max_chars = max_query_chars
        self._record = client.register_script(_RECORD)
        self._page = client.register_script(_PAGE)

    @classmethod
    def from_url(
        cls, url: str, *, socket_timeout: float = 2.0, max_query_chars: int = 1000
    ) -> QueryLogStore:
        """Connect to ``url`` (a short timeout: a record is never worth waiting for)."""
        client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=socket_timeout)
        return cls(client, max_query_chars=max_query_chars)

    def close(self) -> None:
        """Close the connection pool."""
        self._r.close()

    @staticmethod
    def _keys(tenant: str, collection: str, incarnation: str) -> list[str]:
        # The tenant's length first: no (tenant, collection) pair can spell another's key.
        key = f"{_PREFIX}:{len(tenant)}:{tenant}:{collection}:{incarnation}"
        return [f"{key}:entries", f"{key}:counts", f"{key}:order"]

    def record(
        self,
        tenant: str,
        collection: str,
        incarnation: str,
        config: QueryLogConfig,
        query: str,
        *,
        top_k: int | None = None,
        now: float | None = None,
    ) -> int:
        """Log one query (its head, ``max_query_chars``); returns the entries held.

        Raises:
            UpstreamUnavailable: Redis did not answer or refused the write.
        """
        text = query.strip()[: self._max_chars]
        at = time.time() if now is None else now
        qid = query_id(text)
        entry = {"id": qid, "query": text, "top_k": top_k, "first_at": at}
        bounds = [at - config.ttl_s, config.max_entries]
        args = [*bounds, qid, json.dumps(entry), at, config.ttl_s]
        return int(self._call(self._record, self._keys(tenant, collection, incarnation), args))

    def page(
        self,
        tenant: str,
        collection: str,
        incarnation: str,
        config: QueryLogConfig,
        *,
        offset: int = 0,
        limit: int = 100,
        now: float | None = None,
    ) -> QueryLogPage:
        """Up to ``limit`` entries from ``offset``, most recently seen first (none older
        than the config's ``ttl_s``)."""
        at = time.time() if now is None else now
        keys = self._keys(tenant, collection, incarnation)
        args = [at - config.ttl_s, config.max_entries, offset, limit]
        out = cast(list[Any], self._call(self._page, keys, args))
        rows = out[1:]
        entries = [
            QueryLogEntry.model_validate(
                {**json.loads(rows[i]), "count": int(rows[i + 1]), "last_at": float(rows[i + 2])}
            )
            for i in range(0, len(rows), 3)
        ]
        return QueryLogPage(entries=entries, total=int(out[0]))

    def clear(self, tenant: str, collection: str, incarnation: str) -> None:
        """Forget a collection's log (turned off, or the collection deleted).

        Raises:
            UpstreamUnavailable: Redis did not answer.
        """
        try:
            self._r.delete(*self._keys(tenant, collection, incarnation))
        except redis.RedisError as exc:
            raise UpstreamUnavailable("the query log store is unavailable") from exc

    @staticmethod
    def _call(script: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return script(keys=keys, args=args)
        except redis.RedisError as exc:
            raise UpstreamUnavailable("the query log store is unavailable") from exc
