"""Webhook subscriptions, the durable outbox of deliveries, and their logs, in Redis.

Events are written by the scripts of the state changes that cause them (``outbox.lua``
is prepended to ``lifecycle.lua`` and to the re-index's finish), so an acknowledged change
has its deliveries queued: they survive a kill -9 of any process. A sender (services/api)
``claim``s due deliveries under a lease, tries them, and ``settle``s each attempt: done,
retried later, or given up. A claimed delivery whose sender died is due again when its
lease ends, so each is delivered at least once. No HTTP here.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import redis
from pydantic import BaseModel, Field

from core.errors import NotFound, QuotaExceeded
from indexing.outbox import OUTBOX_LUA
from indexing.state_store import redis_errors, state_key

__all__ = [
    "Delivery",
    "Subscription",
    "WebhookEvent",
    "WebhookLimits",
    "WebhookStore",
    "new_secret",
]


class WebhookEvent(StrEnum):
    """The events a subscription can ask for."""

    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"
    DOCUMENT_FAILED = "document.failed"
    REINDEX_COMPLETED = "reindex.completed"
    SNAPSHOT_COMPLETED = "snapshot.completed"


class Subscription(BaseModel):
    """A collection's subscription: where events go, which ones, and the signing secret."""

    id: str
    tenant: str
    collection: str
    url: str
    events: list[WebhookEvent]
    description: str = ""
    secret: str
    created_at: float = Field(default_factory=time.time)


@dataclass(frozen=True)
class Delivery:
    """One claimed delivery: the event for one subscription, at its ``attempt`` (1-based)."""

    id: str
    sub: str
    tenant: str
    collection: str
    msg_id: str
    type: str
    data: dict[str, Any]
    created: float
    attempt: int

    def body(self) -> bytes:
        """The JSON body, the same bytes at every attempt (Standard Webhooks' shape)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.created))
        millis = int((self.created % 1) * 1000)
        payload = {"type": self.type, "timestamp": f"{stamp}.{millis:03d}Z", "data": self.data}
        return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class WebhookLimits:
    """The bounds of subscriptions, the outbox and the logs (``WebhookSettings``)."""

    max_per_collection: int = 10
    outbox_max: int = 100_000
    log_max: int = 200
    log_ttl_s: float = 7 * 24 * 3600.0


def new_secret() -> str:
    """A fresh signing secret in Standard Webhooks' form: ``whsec_`` + base64 of 32 bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _w(*parts: str) -> str:
    return state_key("wh", *parts)


# Add a subscription under the collection's cap: 1 added, -n the collection holds n.
_ADD = """
local n = redis.call('HLEN', KEYS[1])
if n >= tonumber(ARGV[3]) then return -n end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
# Claim up to ARGV[2] deliveries due at ARGV[1] (ms): each is due again at the lease's end
# (ARGV[3] ms later) unless settled first, and counts an attempt. Returns flat task hashes.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local key = KEYS[2] .. id
  if redis.call('EXISTS', key) == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[3]), id)
    redis.call('HINCRBY', key, 'attempts', 1)
    table.insert(out, id)
    table.insert(out, redis.call('HGETALL', key))
  end
end
return out
"""
# settle(id; outcome JSON or "" (nothing to log), retry_at ms or -1 (done / given up)): log
# the attempt, then retry later or forget the delivery.
_SETTLE = """
local key = W .. 'task:' .. ARGV[1]
if redis.call('EXISTS', key) == 0 then return 0 end
if ARGV[2] ~= '' then wh_log(redis.call('HGET', key, 'sub'), cjson.decode(ARGV[2])) end
local at = tonumber(ARGV[3])
if at >= 0 then
  redis.call('ZADD', W .. 'due', at, ARGV[1])
else
  redis.call('ZREM', W .. 'due', ARGV[1])
  redis.call('DEL', key)
end
return 1
"""
_EMIT = "return wh_emit(ARGV[1], ARGV[2], ARGV[3], cjson.decode(ARGV[4]), ARGV[5])"


class WebhookStore:
    """Subscriptions, the outbox and the delivery logs (sync; the API calls it from a thread)."""

    def __init__(self, client: redis.Redis, limits: WebhookLimits | None = None) -> None:
        self._r = client
        self.limits = limits or WebhookLimits()
        self._add = client.register_script(_ADD)
        self._claim = client.register_script(_CLAIM)
        self._settle = client.register_script(OUTBOX_LUA + _SETTLE)
        self._emit = client.register_script(OUTBOX_LUA + _EMIT)

    def configure(self) -> None:
        """Write the bounds where the scripts read them (every process's scripts emit)."""
        with redis_errors():
            self._r.hset(
                _w("conf"),
                mapping={
                    "outbox_max": self.limits.outbox_max,
                    "log_max": self.limits.log_max,
                    "log_ttl_ms": round(self.limits.log_ttl_s * 1000),
                },
            )

    # ------------------------------------------------------------ subscriptions

    def add(self, sub: Subscription) -> Subscription:
        """Store a new subscription under the collection's cap.

        Raises:
            QuotaExceeded: the collection has ``max_per_collection`` subscriptions already.
        """
        cap = self.limits.max_per_collection
        with redis_errors():
            added = int(
                self._add(
                    keys=[_w("subs", sub.tenant, sub.collection)],
                    args=[sub.id, sub.model_dump_json(), cap],
                )
            )
        if added < 0:
            raise QuotaExceeded(
                f"a collection may have {cap} webhook subscriptions; it has {-added}: "
                "delete one first",
                quota="webhooks",
                limit=cap,
                current=-added,
            )
        return sub

    @staticmethod
    def new_id() -> str:
        """A fresh subscription id."""
        return "wh_" + uuid.uuid4().hex

    def subscriptions(self, tenant: str, collection: str) -> list[Subscription]:
        """A collection's subscriptions, oldest first."""
        with redis_errors():
            raw = cast(dict[str, str], self._r.hgetall(_w("subs", tenant, collection)))
        subs = (Subscription.model_validate_json(v) for v in raw.values())
        return sorted(subs, key=lambda s: (s.created_at, s.id))

    def find(self, tenant: str, collection: str, sub_id: str) -> Subscription | None:
        """The subscription, or None."""
        with redis_errors():
            raw = self._r.hget(_w("subs", tenant, collection), sub_id)
        return None if raw is None else Subscription.model_validate_json(cast(str, raw))

    def get(self, tenant: str, collection: str, sub_id: str) -> Subscription:
        """The subscription, or ``NotFound``."""
        sub = self.find(tenant, collection, sub_id)
        if sub is None:
            raise NotFound(f"webhook {sub_id!r} does not exist", code="webhook_not_found")
        return sub

    def remove(self, tenant: str, collection: str, sub_id: str) -> None:
        """Delete a subscription and its log; its queued deliveries are dropped when due.

        Raises:
            NotFound: no such subscription.
        """
        with redis_errors():
            removed = self._r.hdel(_w("subs", tenant, collection), sub_id)
            self._r.delete(_w("log", sub_id))
        if not removed:
            raise NotFound(f"webhook {sub_id!r} does not exist", code="webhook_not_found")

    # ------------------------------------------------------------ the outbox

    def emit(self, tenant: str, collection: str, event: WebhookEvent, data: dict[str, Any]) -> int:
        """Queue ``event`` for the collection's subscriptions; return how many deliveries.

        For changes that are not one of the lifecycle's scripts (a finished snapshot):
        call it right after the change is durable, before acknowledging it.
        """
        with redis_errors():
            return int(
                self._emit(
                    args=[tenant, collection, event.value, json.dumps(data), repr(time.time())]
                )
            )

    def claim(self, limit: int, lease_s: float, *, now: float | None = None) -> list[Delivery]:
        """Up to ``limit`` due deliveries, each leased for ``lease_s`` (an attempt counted)."""
        at = round((time.time() if now is None else now) * 1000)
        with redis_errors():
            flat = self._claim(
                keys=[_w("due"), _w("task", "")], args=[at, limit, round(lease_s * 1000)]
            )
        out: list[Delivery] = []
        for i in range(0, len(flat), 2):
            raw = flat[i + 1]
            task = {raw[j]: raw[j + 1] for j in range(0, len(raw), 2)}
            out.append(
                Delivery(
                    id=str(flat[i]),
                    sub=task["sub"],
                    tenant=task["tenant"],
                    collection=task["collection"],
                    msg_id=task["msg"],
                    type=task["type"],
                    data=json.loads(task["data"]),
                    created=float(task["created"]),
                    attempt=int(task["attempts"]),
                )
            )
        return out

    def settle(
        self, delivery: Delivery, outcome: dict[str, Any] | None, retry_at: float | None
    ) -> None:
        """Log an attempt (unless ``outcome`` is None: its subscription is gone); then retry
        at ``retry_at`` (epoch seconds), or forget the delivery (None)."""
        at = -1 if retry_at is None else round(retry_at * 1000)
        with redis_errors():
            self._settle(args=[delivery.id, "" if outcome is None else json.dumps(outcome), at])

    def outbox_size(self) -> int:
        """Deliveries waiting or in flight."""
        with redis_errors():
            return int(self._r.zcard(_w("due")))

    def dropped(self) -> int:
        """Events not queued because the outbox was full (since Redis's data began)."""
        with redis_errors():
            return int(self._r.get(_w("dropped")) or 0)

    # ------------------------------------------------------------ the logs

    def deliveries(
        self, sub_id: str, *, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of a subscription's delivery attempts, newest first; and how many are kept."""
        with redis_errors():
            pipe = self._r.pipeline(transaction=False)
            pipe.lrange(_w("log", sub_id), offset, offset + limit - 1)
            pipe.llen(_w("log", sub_id))
            rows, total = pipe.execute()
        return [json.loads(r) for r in rows], int(total)
