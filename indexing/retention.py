"""The retention sweep: what expires by coordinated deletion rather than by a key's TTL.

Finished jobs need no sweep: their keys are self-contained and get a TTL when the job
finishes (``lifecycle.lua``, ``ReindexState.finish``). This pass handles the rest:

- **tombstones**: a tombstone is removed by the store write that removes its points (same
  version, under the document's lock), never by a timer: while it exists the points may
  still be in the store, and the tombstone is what keeps queries from returning them. One
  older than ``tombstones_s`` (its delete lost, say) gets that write sent again. Once it
  is gone, nothing can resurrect the document, because nothing relies on the tombstone: a
  late or redelivered message carries the version it was made for, a transition needs the
  record to exist at exactly that version ("gone" otherwise), no message creates a record,
  and every new version comes from one counter (``sieve:version``) that never expires.
- **expired documents** (``expires_at`` passed; queries already drop them): deleted
  through the same lifecycle as a client's delete (``indexing.changes.delete_expired``):
  tombstone, points' removal, then their blobs go with the next blob sweeps. At most
  ``batch`` per collection per pass.
- **blobs**: ``indexing.blob_gc``.

One sweeper at a time (a Redis lock), so several API replicas do not repeat the work.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from indexing.blob_gc import SweptBlobs, sweep_blobs
from indexing.changes import delete_expired
from indexing.queue import TaskQueue
from indexing.reaper import resend_deletes
from indexing.state_store import StateStore, redis_errors, state_key

__all__ = ["RetentionPolicy", "retention_pass"]

log = logging.getLogger("sieve.retention")

_UNLOCK = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long dead state is kept (``RetentionSettings``)."""

    tombstones_s: float
    blobs_s: float
    batch: int = 1000
    # The sweeper's lock outlives any pass it holds it for; a dead sweeper's frees itself.
    lock_s: float = 600.0


def retention_pass(
    state: StateStore, queue: TaskQueue, blobs: SweptBlobs, policy: RetentionPolicy
) -> dict[str, int] | None:
    """One sweep of tombstones, expired documents and blobs; None when another process is
    sweeping."""
    client = state.raw()
    lock, token = state_key("retention", "lock"), uuid.uuid4().hex
    with redis_errors():
        if not client.set(lock, token, nx=True, px=int(policy.lock_s * 1000)):
            return None
    try:
        older_than = time.time() - policy.tombstones_s
        pending = queue.pending()
        resent = sum(
            resend_deletes(
                state,
                queue,
                tenant,
                coll.name,
                pending,
                incarnation=coll.incarnation,
                older_than=older_than,
            )
            for tenant in state.tenants()
            for coll in state.list_collections(tenant)
        )
        now = time.time()
        expired = sum(
            delete_expired(
                state,
                queue,
                tenant=tenant,
                collection=coll.name,
                incarnation=coll.incarnation,
                now=now,
                limit=policy.batch,
            )
            for tenant in state.tenants()
            for coll in state.list_collections(tenant)
        )
        out = {"tombstones_resent": resent, "expired": expired}
        out |= sweep_blobs(client, blobs, retention_s=policy.blobs_s, batch=policy.batch)
    finally:
        with redis_errors():
            client.eval(_UNLOCK, 1, lock, token)
    if resent:
        log.warning("old tombstones' deletes sent again", extra={"tombstones": resent})
    return out
