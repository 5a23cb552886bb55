"""Relevance judgments users send about answers (``POST /v1/collections/{c}/feedback``).

Kept in Redis, one hash per collection: a (query, document) pair holds its latest
judgment, so a user who changes their mind overwrites it. Beside it a sorted set orders
the pairs by their last write (a per-collection sequence), which pages them with a
cursor. The cap on pairs is checked in the same Lua script as the write, so concurrent
posts can never take a collection past it. ``sieve tune --feedback`` reads them back as
qrels.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any, cast

import redis
from pydantic import BaseModel, ConfigDict

from core.errors import InvalidInput, QuotaExceeded, UpstreamUnavailable

__all__ = ["FeedbackPage", "FeedbackStore", "Judgment", "query_id"]

_PREFIX = "sieve:feedback"

# KEYS: pairs hash, order zset, sequence. Pairs written before the order existed are
# ordered once, in hash order, before anything else.
_ORDERED = """
local h, order, seq = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', order) == 0 then
  for _, f in ipairs(redis.call('HKEYS', h)) do
    redis.call('ZADD', order, redis.call('INCR', seq), f)
  end
end
"""
# ARGV: field, judgment, cap. Returns the pairs held, or -n when refused (n held).
_ADD = (
    _ORDERED
    + """
if redis.call('HEXISTS', h, ARGV[1]) == 0 then
  local n = redis.call('HLEN', h)
  if n >= tonumber(ARGV[3]) then return -n end
end
redis.call('HSET', h, ARGV[1], ARGV[2])
redis.call('ZADD', order, redis.call('INCR', seq), ARGV[1])
return redis.call('HLEN', h)
"""
)
# ARGV: after (a sequence number), count. Returns total, then seq, judgment per pair.
_PAGE = (
    _ORDERED
    + """
local rows = redis.call('ZRANGEBYSCORE', order, '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0,
  tonumber(ARGV[2]))
local out = {redis.call('HLEN', h)}
for i = 1, #rows, 2 do
  local value = redis.call('HGET', h, rows[i])
  if value then
    table.insert(out, rows[i + 1])
    table.insert(out, value)
  end
end
return out
"""
)


def query_id(query: str) -> str:
    """A stable id for a query text (the qrels key ``sieve tune`` uses)."""
    return "q" + hashlib.blake2b(query.strip().encode("utf-8"), digest_size=8).hexdigest()


class Judgment(BaseModel):
    """One user's judgment of one document for one query."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    query: str
    document_id: str
    relevant: bool
    at: float = 0.0


class FeedbackPage(BaseModel):
    """Judgments in write order; ``next_cursor`` continues after them (None: no more)."""

    judgments: list[Judgment]
    total: int
    next_cursor: str | None = None


class FeedbackStore:
    """Judgments per (tenant, collection), at most ``limit`` pairs each (sync, from a thread)."""

    def __init__(self, client: redis.Redis, *, limit: int = 10_000) -> None:
        self._r = client
        self._limit = limit
        self._add = client.register_script(_ADD)
        self._page = client.register_script(_PAGE)

    @classmethod
    def from_url(
        cls, url: str, *, socket_timeout: float = 5.0, limit: int = 10_000
    ) -> FeedbackStore:
        """Connect to ``url``."""
        client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=socket_timeout)
        return cls(client, limit=limit)

    def close(self) -> None:
        """Close the connection pool."""
        self._r.close()

    @staticmethod
    def _key(tenant: str, collection: str) -> str:
        return f"{_PREFIX}:{tenant}:{collection}"

    def _keys(self, tenant: str, collection: str) -> list[str]:
        key = self._key(tenant, collection)
        return [key, f"{key}:order", f"{key}:seq"]

    def add(self, tenant: str, collection: str, judgment: Judgment) -> int:
        """Store (or overwrite) a judgment; returns how many pairs the collection holds.

        Raises:
            QuotaExceeded: the collection already holds ``limit`` other pairs (checked in
                the same atomic step as the write).
            UpstreamUnavailable: Redis did not answer.
        """
        field = f"{query_id(judgment.query)}\t{judgment.document_id}"
        value = judgment.model_copy(update={"at": judgment.at or time.time()})
        args = [field, value.model_dump_json(), self._limit]
        held = int(self._call(self._add, self._keys(tenant, collection), args))
        if held < 0:
            raise QuotaExceeded(
                f"collection {collection!r} holds {-held} judgments; the quota is "
                f"{self._limit} (a new pair is refused, a judged pair may still change)",
                quota="feedback",
                limit=self._limit,
                current=-held,
            )
        return held

    def page(
        self, tenant: str, collection: str, *, cursor: str | None = None, limit: int = 1000
    ) -> FeedbackPage:
        """Up to ``limit`` judgments after ``cursor``, least recently written first.

        A pair written again while someone pages moves to the end (it shows up again with
        its new judgment); no pair held all along is skipped.

        Raises:
            InvalidInput: ``cursor`` is not one this method returned.
        """
        after = _parse_cursor(cursor)
        out = cast(
            list[Any], self._call(self._page, self._keys(tenant, collection), [after, limit + 1])
        )
        total, rows = int(out[0]), out[1:]
        items = [(int(float(rows[i])), rows[i + 1]) for i in range(0, len(rows), 2)]
        more = len(items) > limit
        items = items[:limit]
        return FeedbackPage(
            judgments=[Judgment.model_validate(json.loads(v)) for _, v in items],
            total=total,
            next_cursor=str(items[-1][0]) if more and items else None,
        )

    def list(self, tenant: str, collection: str) -> list[Judgment]:
        """Every judgment of a collection (at most ``limit``), least recently written first."""
        out: list[Judgment] = []
        cursor: str | None = None
        while True:
            page = self.page(tenant, collection, cursor=cursor)
            out += page.judgments
            if page.next_cursor is None:
                return out
            cursor = page.next_cursor

    @staticmethod
    def _call(script: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return script(keys=keys, args=args)
        except redis.RedisError as exc:
            raise UpstreamUnavailable("the feedback store is unavailable") from exc

    def clear(self, tenant: str, collection: str) -> None:
        """Forget a collection's judgments (when the collection is deleted)."""
        try:
            self._r.delete(*self._keys(tenant, collection))
        except redis.RedisError as exc:
            raise UpstreamUnavailable("the feedback store is unavailable") from exc


def _parse_cursor(cursor: str | None) -> int:
    if cursor is None or cursor == "":
        return 0
    if not cursor.isdigit() or len(cursor) > 18:
        raise InvalidInput(
            "cursor: not a cursor this server returned (use next_cursor)", code="invalid_cursor"
        )
    return int(cursor)
