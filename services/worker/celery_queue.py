"""The lifecycle's ``TaskQueue`` port on Celery (Redis broker).

Task names live here, once. ``pending`` and ``restore_unacked`` read the broker's own
structures (kombu's Redis transport: one list per queue, plus the ``unacked`` hash of
delivered, unacknowledged messages), which is what makes recovery exact and fast: a
crashed consumer's messages need not wait out the visibility timeout.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

import redis
from celery import Celery
from pydantic import TypeAdapter, ValidationError

from indexing.messages import DeleteWrite, IngestTask, ReplaceWrite, StoreWrite
from indexing.queue import Pending

__all__ = [
    "INGEST_QUEUE",
    "INGEST_TASK",
    "STORE_WRITES_QUEUE",
    "WRITE_TASK",
    "CeleryTaskQueue",
    "parse_write",
]

log = logging.getLogger("sieve.worker")

INGEST_QUEUE = "ingest"
# Consumed by the store owner: the API process in embedded mode, any worker in compose mode.
STORE_WRITES_QUEUE = "store_writes"
INGEST_TASK = "sieve.ingest"
WRITE_TASK = "sieve.write"

_UNACKED = "unacked"
_UNACKED_INDEX = "unacked_index"
_PRIORITY_SEP = "\x06\x16"
# The message goes back where kombu's own restore puts it (RPUSH: consumed next).
_REDELIVER = """
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then return 0 end
local msg = cjson.decode(entry)
redis.call('RPUSH', msg[3], cjson.encode(msg[1]))
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""
_WRITE_ADAPTER: TypeAdapter[ReplaceWrite | DeleteWrite] = TypeAdapter(StoreWrite)


def parse_write(raw: dict[str, Any]) -> ReplaceWrite | DeleteWrite:
    """A store write from its JSON form."""
    return _WRITE_ADAPTER.validate_python(raw)


class CeleryTaskQueue:
    """Sends typed lifecycle messages as Celery tasks; reads the broker for recovery."""

    def __init__(self, celery: Celery, broker: redis.Redis) -> None:
        self._celery = celery
        self._broker = broker

    def send_ingest(self, task: IngestTask, *, countdown_s: float = 0) -> None:
        """Queue ``sieve.ingest`` on the ingest queue."""
        self._celery.send_task(
            INGEST_TASK,
            args=[task.model_dump(mode="json")],
            queue=INGEST_QUEUE,
            countdown=countdown_s or None,
        )

    def send_write(self, write: ReplaceWrite | DeleteWrite, *, countdown_s: float = 0) -> None:
        """Queue ``sieve.write`` for the store's owner."""
        self._celery.send_task(
            WRITE_TASK,
            args=[write.model_dump(mode="json")],
            queue=STORE_WRITES_QUEUE,
            countdown=countdown_s or None,
        )

    def pending(self) -> Pending:
        """Every lifecycle message waiting in a queue or delivered and unacknowledged."""
        out = Pending()
        raws: list[bytes | str] = []
        for queue in (INGEST_QUEUE, STORE_WRITES_QUEUE):
            for key in self._queue_keys(queue):
                raws += cast(list[bytes], self._broker.lrange(key, 0, -1))
        for entry in cast(list[bytes], self._broker.hvals(_UNACKED)):
            try:
                raws.append(json.dumps(json.loads(entry)[0]))
            except (ValueError, IndexError, TypeError):
                continue
        for name, args in _decode(raws):
            try:
                if name == INGEST_TASK:
                    task = IngestTask.model_validate(args[0])
                    out.ingest |= {
                        (task.tenant, task.collection, d.id, d.version) for d in task.docs
                    }
                elif name == WRITE_TASK:
                    write = parse_write(args[0])
                    if isinstance(write, DeleteWrite):
                        out.writes.add(
                            (write.tenant, write.collection, write.doc.id, write.doc.version)
                        )
                    else:
                        out.writes |= {
                            (write.tenant, write.collection, d.id, d.version) for d in write.docs
                        }
            except (ValidationError, IndexError):
                continue
        return out

    def delivered(self, older_than_s: float) -> list[tuple[str, IngestTask]]:
        """Ingest messages delivered over ``older_than_s`` ago and not acknowledged.

        A message with an ETA (a retry waiting out its countdown, held by a live worker)
        counts from its ETA, not from its delivery: until ETA + ``older_than_s`` it is
        not orphaned, however long ago the worker received it.
        """
        now = time.time()
        tags = cast(list[str], self._broker.zrangebyscore(_UNACKED_INDEX, 0, now - older_than_s))
        out: list[tuple[str, IngestTask]] = []
        for tag in tags:
            entry = self._broker.hget(_UNACKED, tag)
            if entry is None:
                continue
            try:
                payload = json.loads(entry)[0]
                if (eta := _eta(payload)) is not None and eta + older_than_s > now:
                    continue
                for name, args in _decode([json.dumps(payload)]):
                    if name == INGEST_TASK:
                        out.append((tag, IngestTask.model_validate(args[0])))
            except (ValueError, IndexError, TypeError, ValidationError):
                continue
        return out

    def redeliver(self, tag: str) -> bool:
        """Move one unacknowledged message back to the front of its queue, atomically."""
        restored = self._broker.eval(_REDELIVER, 2, _UNACKED, _UNACKED_INDEX, tag)
        return bool(restored)

    def restore_unacked(self, queue: str) -> int:
        """Put ``queue``'s delivered, unacknowledged messages back (their consumer is gone).

        Only for a queue with a single consumer that is starting now: the embedded
        store writer. Returns how many were restored.
        """
        restored = 0
        for tag, entry in cast(dict[bytes, bytes], self._broker.hgetall(_UNACKED)).items():
            try:
                payload, _exchange, routing_key = json.loads(entry)
            except (ValueError, TypeError):
                continue
            if routing_key != queue:
                continue
            pipe = self._broker.pipeline()
            pipe.rpush(queue, json.dumps(payload))
            pipe.hdel(_UNACKED, tag)
            pipe.zrem(_UNACKED_INDEX, tag)
            pipe.execute()
            restored += 1
        return restored

    def depth(self, queue: str) -> int:
        """Messages waiting in ``queue`` (every priority)."""
        return sum(int(self._broker.llen(key)) for key in self._queue_keys(queue))

    @staticmethod
    def _queue_keys(queue: str) -> list[str]:
        return [queue, *(f"{queue}{_PRIORITY_SEP}{p}" for p in (3, 6, 9))]


def _eta(payload: Any) -> float | None:
    """A Celery message's ETA (``headers.eta``, ISO 8601) as a Unix time, or None."""
    raw = payload.get("headers", {}).get("eta") if isinstance(payload, dict) else None
    if not isinstance(raw, str):
        return None
    when = datetime.fromisoformat(raw)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _decode(raws: Iterable[bytes | str]) -> Iterable[tuple[str, list[Any]]]:
    for raw in raws:
        try:
            msg = json.loads(raw)
            body = msg["body"]
            if msg.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]
            yield str(msg["headers"]["task"]), list(args)
        except (ValueError, KeyError, TypeError, IndexError):
            continue
