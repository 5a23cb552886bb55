"""Blobs no document record references are deleted ``retention`` after they stopped being used.

Blobs are content-addressed and shared (two documents, or two tenants, with the same bytes
hold one blob), so a blob is dead only when *no* record references it. The sweep is a
mark-and-sweep, not reference counting, so no write path has to keep a count right:

- **mark**: every record (tombstones and failed ones included) is read; every sha256-hex
  value in it (``blob_key``, ``content_hash``, ``indexed_hash`` of the version whose points
  are served, ``page_images``) is a reference, and so is every page its page-image
  manifest lists (the record names only the manifest).
- **sweep**: ``sieve:blobgc`` (zset key -> since when the blob is not known to be used)
  gets every unreferenced blob, at the pass's start; a referenced one leaves it. One whose
  score is older than the retention is deleted.

The race with a re-upload of the same content is closed in Redis, not on the file system:
an upload *pins* its keys (score := now) before it looks at the files (``LocalBlobStore``'s
``before_write``), and the sweep deletes a blob only under a short per-blob lock it takes
atomically with the check that the blob was not pinned since the cutoff. A pin that meets
that lock waits until the file is gone and then writes it again. So either the sweep sees
the pin and keeps the blob, or the upload sees the lock and rewrites the blob. A record
that the mark missed (accepted during the pass) was pinned by its upload, which is younger
than the cutoff as long as an upload takes less than the retention.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Protocol, cast

import redis

from core.errors import NotFound, UpstreamUnavailable
from indexing.state_store import redis_errors, state_key
from ingest.page_store import read_manifest

__all__ = ["BlobLedger", "SweptBlobs", "live_blob_keys", "sweep_blobs"]

log = logging.getLogger("sieve.retention")

_HEX_KEY = re.compile(r"\b[0-9a-f]{64}\b")
# The sweep holds a blob's lock across one unlink; a sweeper that dies holding it frees it
# after this, and an upload of that content waits at most this long.
_LOCK_MS = 10_000
_PIN_POLL_S = 0.02

_PIN = """
local busy = 0
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
  if redis.call('EXISTS', KEYS[2] .. ARGV[i]) == 1 then busy = busy + 1 end
end
return busy
"""
# claim(key, cutoff, token, lock_ms): 1 when the blob was not pinned since the cutoff
# and its lock is now ours.
_CLAIM = """
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) > tonumber(ARGV[2]) then return 0 end
if redis.call('SET', KEYS[2] .. ARGV[1], ARGV[3], 'NX', 'PX', ARGV[4]) then return 1 end
return 0
"""
# release(key, cutoff, token): the blob is gone; forget it unless an upload pinned it since.
_RELEASE = """
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) <= tonumber(ARGV[2]) then redis.call('ZREM', KEYS[1], ARGV[1]) end
if redis.call('GET', KEYS[2] .. ARGV[1]) == ARGV[3] then redis.call('DEL', KEYS[2] .. ARGV[1]) end
return 1
"""
# unmark(since, key...): these blobs are referenced; drop their marks older than ``since``.
_UNMARK = """
local n = 0
for i = 2, #ARGV do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) <= tonumber(ARGV[1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
"""


class SweptBlobs(Protocol):
    """What the sweep needs of a blob store: its keys, reading one, and deleting one."""

    def keys(self) -> Iterable[str]:
        """Every stored key."""
        ...

    def get(self, key: str) -> bytes:
        """A blob's bytes (a page-image manifest names the page blobs it keeps alive)."""
        ...

    def delete(self, key: str) -> None:
        """Remove a blob (nothing when it is not there)."""
        ...


class BlobLedger:
    """The sweep's marks, the uploads' pins and the per-blob delete locks, in Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self._r = client
        self._keys = [state_key("blobgc"), state_key("blobgc", "lock", "")]
        self._pin = client.register_script(_PIN)
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._unmark = client.register_script(_UNMARK)

    def pin(self, keys: Sequence[str]) -> None:
        """An upload is about to use these blobs: keep them; wait out a delete in progress.

        Raises:
            UpstreamUnavailable: Redis failed, or a delete lock outlived its TTL.
        """
        deadline = time.monotonic() + _LOCK_MS / 1000 + 1
        while True:
            with redis_errors():
                busy = int(self._pin(keys=self._keys, args=[repr(time.time()), *keys]))
            if not busy:
                return
            if time.monotonic() > deadline:
                raise UpstreamUnavailable("a blob is being deleted; retry", retry_after=1)
            time.sleep(_PIN_POLL_S)

    def marked(self) -> dict[str, float]:
        """Every marked (or pinned) blob and its score."""
        with redis_errors():
            rows = self._r.zrange(self._keys[0], 0, -1, withscores=True)
        return {str(k): float(s) for k, s in cast(list[tuple[str, float]], rows)}

    def mark(self, keys: Sequence[str], at: float) -> None:
        """Unreferenced since ``at`` (a blob already marked or pinned keeps its score)."""
        if keys:
            with redis_errors():
                self._r.zadd(self._keys[0], dict.fromkeys(keys, at), nx=True)

    def unmark(self, keys: Sequence[str], since: float) -> int:
        """Referenced again: drop the marks set before ``since``."""
        if not keys:
            return 0
        with redis_errors():
            return int(self._unmark(keys=self._keys[:1], args=[repr(since), *keys]))

    def due(self, cutoff: float, limit: int) -> list[str]:
        """Up to ``limit`` marked blobs unused since before ``cutoff``."""
        with redis_errors():
            rows = self._r.zrangebyscore(self._keys[0], "-inf", repr(cutoff), start=0, num=limit)
        return [str(k) for k in cast(list[str], rows)]

    def claim(self, key: str, cutoff: float, token: str) -> bool:
        """Lock ``key`` for deletion if no upload pinned it since ``cutoff``."""
        with redis_errors():
            return bool(self._claim(keys=self._keys, args=[key, repr(cutoff), token, _LOCK_MS]))

    def release(self, key: str, cutoff: float, token: str) -> None:
        """The blob is deleted: drop its mark (unless pinned meanwhile) and the lock."""
        with redis_errors():
            self._release(keys=self._keys, args=[key, repr(cutoff), token])


def live_blob_keys(client: redis.Redis, batch: int, blobs: SweptBlobs) -> set[str]:
    """Every blob key any document record names, and the pages its image manifest names.

    O(documents), in pages of ``batch``; one manifest read a document with page images.
    """
    live: set[str] = set()
    manifests: set[str] = set()
    with redis_errors():
        pattern = state_key("doc", "*")
        keys: list[str] = []
        for key in client.scan_iter(match=pattern, count=batch):
            keys.append(cast(str, key))
            if len(keys) >= batch:
                _refs(client, keys, live, manifests)
                keys = []
        _refs(client, keys, live, manifests)
    for key in sorted(manifests):
        try:
            manifest = read_manifest(blobs, key)
        except NotFound:
            continue  # gone or unreadable: the route says image_not_derived; nothing to keep
        live.update(page.key for page in manifest.pages.values())
    return live


def _refs(client: redis.Redis, keys: list[str], live: set[str], manifests: set[str]) -> None:
    if not keys:
        return
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    for record in cast(list[dict[str, str]], pipe.execute()):
        for name, value in record.items():
            found = _HEX_KEY.findall(value)
            live.update(found)
            if name == "page_images":
                manifests.update(found)


def sweep_blobs(
    client: redis.Redis, blobs: SweptBlobs, *, retention_s: float, batch: int
) -> dict[str, int]:
    """One pass: mark unreferenced blobs, delete those unused for ``retention_s``."""
    ledger = BlobLedger(client)
    start = time.time()
    live = live_blob_keys(client, batch, blobs)
    marked = ledger.marked()
    unmarked = ledger.unmark(sorted(k for k in marked if k in live), start)
    stored = set(blobs.keys())
    ledger.mark(sorted(stored - live - marked.keys()), start)
    cutoff = start - retention_s
    token = uuid.uuid4().hex
    deleted = 0
    while True:
        due = [k for k in ledger.due(cutoff, batch) if k not in live]
        progressed = False
        for key in due:
            if not ledger.claim(key, cutoff, token):
                continue
            try:
                blobs.delete(key)
            finally:
                ledger.release(key, cutoff, token)
            progressed = True
            deleted += key in stored
        if not progressed:
            break
    if deleted:
        log.info("dead blobs deleted", extra={"deleted": deleted, "live": len(live)})
    return {"deleted": deleted, "unmarked": unmarked, "live": len(live)}
