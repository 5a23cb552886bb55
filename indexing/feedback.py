"""Relevance judgments users send about answers (``POST /v1/collections/{c}/feedback``).

Kept in Redis, one hash per collection: a (query, document) pair holds its latest
judgment, so a user who changes their mind overwrites it. ``sieve tune --feedback``
reads them back as qrels.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import cast

import redis
from pydantic import BaseModel, ConfigDict

from core.errors import InvalidInput, UpstreamUnavailable

__all__ = ["FeedbackStore", "Judgment", "query_id"]

_PREFIX = "sieve:feedback"


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


class FeedbackStore:
    """Judgments per (tenant, collection), at most ``limit`` pairs each (sync, from a thread)."""

    def __init__(self, client: redis.Redis, *, limit: int = 100_000) -> None:
        self._r = client
        self._limit = limit

    @classmethod
    def from_url(cls, url: str, *, socket_timeout: float = 5.0) -> FeedbackStore:
        """Connect to ``url``."""
        return cls(redis.Redis.from_url(url, decode_responses=True, socket_timeout=socket_timeout))

    def close(self) -> None:
        """Close the connection pool."""
        self._r.close()

    @staticmethod
    def _key(tenant: str, collection: str) -> str:
        return f"{_PREFIX}:{tenant}:{collection}"

    def add(self, tenant: str, collection: str, judgment: Judgment) -> int:
        """Store (or overwrite) a judgment; returns how many pairs the collection holds.

        Raises:
            InvalidInput: the collection already holds ``limit`` other pairs.
            UpstreamUnavailable: Redis did not answer.
        """
        key = self._key(tenant, collection)
        field = f"{query_id(judgment.query)}\t{judgment.document_id}"
        value = judgment.model_copy(update={"at": judgment.at or time.time()})
        try:
            if self._r.hlen(key) >= self._limit and not self._r.hexists(key, field):
                raise InvalidInput(
                    f"collection {collection!r} holds {self._limit} judgments, the most kept",
                    code="feedback_full",
                )
            self._r.hset(key, field, value.model_dump_json())
            return int(self._r.hlen(key))
        except redis.RedisError as exc:
            raise UpstreamUnavailable("the feedback store is unavailable") from exc

    def list(self, tenant: str, collection: str) -> list[Judgment]:
        """Every judgment of a collection, oldest first."""
        try:
            raw = cast(dict[str, str], self._r.hgetall(self._key(tenant, collection)))
        except redis.RedisError as exc:
            raise UpstreamUnavailable("the feedback store is unavailable") from exc
        items = [Judgment.model_validate(json.loads(v)) for v in raw.values()]
        return sorted(items, key=lambda j: (j.at, j.query, j.document_id))

    def clear(self, tenant: str, collection: str) -> None:
        """Forget a collection's judgments (when the collection is deleted)."""
        try:
            self._r.delete(self._key(tenant, collection))
        except redis.RedisError as exc:
            raise UpstreamUnavailable("the feedback store is unavailable") from exc
