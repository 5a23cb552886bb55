"""Durable state in Redis: collections, documents and jobs, shared by the API and the workers.

Every change of a document goes through one Lua script (``lifecycle.lua``): the version
and owner checks and the change they guard, with every index and counter it touches,
are one atomic step. Counts (per collection, per job, in all) are kept by that script, so
reading them costs O(1), never a scan. Redis runs with AOF in every mode.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib import resources
from itertools import islice
from typing import Any, cast

import redis

from core.defaults import DEFAULT_JOB_RETENTION_S
from core.errors import Conflict, NotFound, QuotaExceeded, UpstreamUnavailable
from indexing.outbox import OUTBOX_LUA
from indexing.records import (
    CollectionRecord,
    DocStatus,
    DocumentRecord,
    JobRecord,
    JobState,
    JobView,
)

__all__ = [
    "CLEAR",
    "KEEP",
    "OOM_RETRY_AFTER_S",
    "DocRef",
    "NewDocument",
    "Owner",
    "StateStore",
    "TenantQuota",
    "Transition",
    "is_out_of_memory",
    "redis_errors",
    "state_key",
]

_PREFIX = "sieve:"
# Used only before a collection has any chunk: a 256-token chunk holds ~150 BM25 terms.
_DEFAULT_BM25_AVG_LEN = 150.0
# A job view lists its documents inline up to this many; larger jobs give counts only.
_JOB_LIST_LIMIT = 1000
_ERRORS_LIMIT = 1000
_LIFECYCLE_FIELDS = frozenset(
    {"id", "version", "seq", "status", "job_id", "owner", "crashes", "updated_at"}
)


# HSETNX under a cap on the tenant's collections, atomically: 1 created, 0 exists,
# -n refused (the tenant holds n).
_UNLOCK = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
# create: the name is free, no deletion of an earlier collection by that name is still
# cleaning up its keys (they are the new one's keys too), and the tenant is under its cap
# of collections (ARGV[3], 0: none). 1 created, 0 the name is taken, -1 a deletion is under
# way, -(2 + n) the tenant holds n >= the cap.
_CREATE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local n = redis.call('HLEN', KEYS[1])
local cap = tonumber(ARGV[3])
if cap > 0 and n >= cap then return -(2 + n) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[4])
return 1
"""
# begin a delete: the record leaves the collections (accept checks it atomically, so no
# upload lands after this) and stays, until the clean-up is done, as the deletion marker;
# a deletion that did not finish is resumed from its marker.
_BEGIN_DELETE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  redis.call('SET', KEYS[2], raw)
  redis.call('HDEL', KEYS[1], ARGV[1])
  return raw
end
return redis.call('GET', KEYS[2])
"""

# gone(deleted, expiry; now, ids...): the ids queries must drop, deleted or expired at now.
# One command: a pipeline of two ZMSCOREs cost ~1 ms more per query in redis-py than one
# ZMSCORE; this costs ~0.03-0.1 ms more (p50 of 50 ids, busy 2-core machine).
_GONE = """
local ids = {unpack(ARGV, 2)}
local deleted = redis.call('ZMSCORE', KEYS[1], unpack(ids))
local expiry = redis.call('ZMSCORE', KEYS[2], unpack(ids))
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #ids do
  if deleted[i] or (expiry[i] and tonumber(expiry[i]) <= now) then table.insert(out, ids[i]) end
end
return out
"""


def _k(*parts: str) -> str:
    return _PREFIX + ":".join(parts)


def state_key(*parts: str) -> str:
    """A key of the lifecycle's Redis layout (for modules that keep state beside it)."""
    return _k(*parts)


@dataclass(frozen=True)
class DocRef:
    """A document of a collection, as the running index names it."""

    tenant: str
    collection: str
    doc_id: str

    @classmethod
    def parse(cls, raw: str) -> DocRef:
        """Read ``tenant\\ncollection\\nid`` (ids may hold anything but a newline first)."""
        tenant, collection, doc_id = raw.split("\n", 2)
        return cls(tenant, collection, doc_id)


@dataclass(frozen=True)
class NewDocument:
    """A document an upload accepts: queued, or failed already (with its reason)."""

    record: DocumentRecord
    error: tuple[str, str] | None = None


@dataclass(frozen=True)
class Owner:
    """How a transition treats the document's owner (the worker that claimed it)."""

    mode: str
    owner: str = ""

    @classmethod
    def claim(cls, owner: str) -> Owner:
        """Take the document if it is free or its owner is dead."""
        return cls("claim", owner)

    @classmethod
    def mine(cls, owner: str) -> Owner:
        """Only if ``owner`` still holds it; then release it."""
        return cls("mine", owner)

    @classmethod
    def hold(cls, owner: str) -> Owner:
        """Only if ``owner`` still holds it; keep holding."""
        return cls("hold", owner)

    def arg(self) -> str:
        """The script's argument."""
        return f"{self.mode}:{self.owner}" if self.owner else self.mode


KEEP = Owner("keep")
CLEAR = Owner("clear")


@dataclass(frozen=True)
class TenantQuota:
    """What one tenant's documents may add up to (None: no bound)."""

    documents: int | None = None
    stored_bytes: int | None = None

    def arg(self) -> str:
        """The lifecycle script's quota argument."""
        quota = {"documents": self.documents, "bytes": self.stored_bytes}
        return json.dumps({k: v for k, v in quota.items() if v is not None})


_QUOTA_UNITS = {"documents": "documents", "stored_bytes": "bytes"}


def _quota_error(over: list[Any], what: str = "this upload") -> QuotaExceeded:
    quota, limit, current, added = str(over[0]), int(over[1]), int(over[2]), int(over[3])
    unit = _QUOTA_UNITS.get(quota, quota)
    return QuotaExceeded(
        f"the tenant's {quota} quota is {limit} {unit}; it holds {current} and {what} "
        f"adds {added}: delete documents or collections first",
        quota=quota,
        limit=limit,
        current=current,
    )


@dataclass(frozen=True)
class Transition:
    """The outcome of a guarded change: applied, or why not (stale, gone, owned, ...)."""

    applied: bool
    reason: str = ""


def _enc(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _enc_fields(fields: dict[str, Any]) -> list[str]:
    return [part for name, value in fields.items() for part in (name, _enc(value))]


def _decode(raw: dict[str, str]) -> DocumentRecord:
    return DocumentRecord.model_validate({k: json.loads(v) for k, v in raw.items()})


class StateStore:
    """Collections, documents and jobs in Redis (sync; the API calls it from a thread)."""

    def __init__(
        self, client: redis.Redis, *, job_retention_s: float = DEFAULT_JOB_RETENTION_S
    ) -> None:
        self._r = client
        # The webhook outbox first: a change and the events it causes are one step.
        source = OUTBOX_LUA + resources.files("indexing").joinpath("lifecycle.lua").read_text()
        self._script = client.register_script(source)
        self._create = client.register_script(_CREATE)
        self._begin_delete = client.register_script(_BEGIN_DELETE)
        self._gone = client.register_script(_GONE)
        # A finished job's keys expire this long after it finished (the script sets the TTL).
        self.job_retention_s = job_retention_s

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        socket_timeout: float = 5.0,
        job_retention_s: float = DEFAULT_JOB_RETENTION_S,
    ) -> StateStore:
        """Connect to ``url`` (decoded responses)."""
        client = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=socket_timeout, health_check_interval=30
        )
        return cls(client, job_retention_s=job_retention_s)

    def close(self) -> None:
        """Close the connection pool."""
        self._r.close()

    def ping(self) -> bool:
        """True when Redis answers."""
        try:
            return bool(self._r.ping())
        except redis.RedisError:
            return False

    def raw(self) -> redis.Redis:
        """The underlying client (for health checks and queue depth)."""
        return self._r

    def server_run_id(self) -> str:
        """The Redis server's run id: it changes on every restart of the server."""
        with _mapped():
            info = self._r.info("server")
        return str(info.get("run_id", ""))

    def memory(self) -> tuple[int, int]:
        """Redis's ``used_memory`` and ``maxmemory`` in bytes (maxmemory 0: no limit)."""
        with _mapped():
            info = self._r.info("memory")
        return int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))

    def _run(self, *args: Any) -> Any:
        ttl_ms = round(self.job_retention_s * 1000)
        with _mapped():
            return self._script(args=[*(str(a) for a in args), str(ttl_ms)])

    # ------------------------------------------------------------ collections

    def create_collection(
        self, record: CollectionRecord, *, max_collections: int = 0
    ) -> CollectionRecord:
        """Register a collection under a fresh incarnation id; return the stored record.

        The tenant's collections are capped at ``max_collections`` (0: no cap) in the same
        atomic step.

        Raises:
            Conflict: the tenant already has one by that name (``collection_exists``), or
                the deletion of an earlier one is still under way (``collection_deleting``).
            QuotaExceeded: the tenant holds ``max_collections`` already.
        """
        if not record.incarnation:
            record = record.model_copy(update={"incarnation": uuid.uuid4().hex})
        with _mapped():
            created = int(
                self._create(
                    keys=[
                        _k("collections", record.tenant),
                        _k("coldel", record.tenant, record.name),
                        _k("tenants"),
                    ],
                    args=[record.name, record.model_dump_json(), max_collections, record.tenant],
                )
            )
        if created == -1:
            raise Conflict(
                f"collection {record.name!r} is still being deleted; delete it again to "
                "finish, or retry shortly",
                code="collection_deleting",
            )
        if created < -1:
            held = -created - 2
            raise QuotaExceeded(
                f"the tenant's collections quota is {max_collections}; it holds {held}: "
                "delete a collection first",
                quota="collections",
                limit=max_collections,
                current=held,
            )
        if not created:
            raise Conflict(f"collection {record.name!r} already exists", code="collection_exists")
        return record

    def tenants(self) -> list[str]:
        """Every tenant that ever created a collection."""
        with _mapped():
            return sorted(cast(set[str], self._r.smembers(_k("tenants"))))

    def update_collection(self, record: CollectionRecord) -> None:
        """Overwrite a collection's record (e.g. its measured BM25 average length)."""
        with _mapped():
            self._r.hset(_k("collections", record.tenant), record.name, record.model_dump_json())

    def patch_collection(self, tenant: str, name: str, **changes: Any) -> CollectionRecord:
        """Change some fields of a collection's record, atomically against other changes.

        A read-modify-write under WATCH: a re-index's switch of the record (store and
        model fields) between the read and the write makes it start over, so a policy
        change can never put an old store pointer back.

        Raises:
            NotFound: no such collection.
        """
        key = _k("collections", tenant)
        with _mapped():
            while True:
                with self._r.pipeline() as pipe:
                    try:
                        pipe.watch(key)  # type: ignore[no-untyped-call]
                        raw = pipe.hget(key, name)
                        if raw is None:
                            raise NotFound(
                                f"collection {name!r} does not exist", code="collection_not_found"
                            )
                        rec = CollectionRecord.model_validate_json(raw).model_copy(update=changes)
                        pipe.multi()
                        pipe.hset(key, name, rec.model_dump_json())
                        pipe.execute()
                    except redis.WatchError:
                        continue
                    return rec

    def get_collection(self, tenant: str, name: str) -> CollectionRecord:
        """Return the collection or raise ``NotFound``."""
        with _mapped():
            raw = self._r.hget(_k("collections", tenant), name)
        if raw is None:
            raise NotFound(f"collection {name!r} does not exist", code="collection_not_found")
        return CollectionRecord.model_validate_json(raw)

    def find_collection(self, tenant: str, name: str) -> CollectionRecord | None:
        """Return the collection, or None."""
        try:
            return self.get_collection(tenant, name)
        except NotFound:
            return None

    def list_collections(self, tenant: str) -> list[CollectionRecord]:
        """All of a tenant's collections, by name."""
        with _mapped():
            raw = self._r.hgetall(_k("collections", tenant))
        return sorted(
            (CollectionRecord.model_validate_json(v) for v in raw.values()), key=lambda c: c.name
        )

    def begin_delete_collection(self, tenant: str, name: str) -> CollectionRecord:
        """First step of a delete: from now on no upload is accepted into the collection and
        its name cannot be created again until ``delete_collection`` finished; return the
        record (also of a deletion that did not finish, to resume it).

        Raises:
            NotFound: no such collection, and none being deleted.
        """
        with _mapped():
            raw = self._begin_delete(
                keys=[_k("collections", tenant), _k("coldel", tenant, name)], args=[name]
            )
        if raw is None:
            raise NotFound(f"collection {name!r} does not exist", code="collection_not_found")
        return CollectionRecord.model_validate_json(raw)

    def delete_collection(self, tenant: str, name: str) -> None:
        """Forget a collection and its documents; their unfinished job entries end.

        The deletion marker goes last, so the name is free only once every key is gone.
        """
        now = time.time()
        with _mapped():
            with suppress(NotFound):
                self.begin_delete_collection(tenant, name)
            ids = self._all_ids(tenant, name)
        for doc_id in ids:
            self._run("drop", tenant, name, doc_id, now)
        with _mapped():
            self._r.delete(
                _k("docorder", tenant, name),
                _k("cnt", tenant, name),
                _k("bm25len", tenant, name),
                _k("bytes", tenant, name),
                _k("expiry", tenant, name),
                _k("wh", "subs", tenant, name),  # its webhook subscriptions
                # The chunk manifests of incremental re-ingest (``indexing.reuse``).
                _k("chunkmap", tenant, name),
                *(_k("st", tenant, name, s.value) for s in DocStatus),
                # A re-index's write pause, writers in flight and changed documents.
                *(_k("rx", part, tenant, name) for part in ("pause", "gate", "dirty", "on")),
            )
            self._r.delete(_k("coldel", tenant, name))

    def _all_ids(self, tenant: str, name: str) -> list[str]:
        ids = cast(list[str], self._r.zrange(_k("docorder", tenant, name), 0, -1))
        deleted = cast(list[str], self._r.zrange(_k("st", tenant, name, "deleted"), 0, -1))
        return ids + deleted

    def bm25_avg_len(self, tenant: str, name: str, lengths: Sequence[int]) -> float:
        """Add chunks' BM25 lengths to the collection's running mean; return the mean.

        BM25's length normalisation needs the real mean length of the indexed texts
        (left at the engine's default it cost 0.07 nDCG@10 on a public collection).
        """
        key = _k("bm25len", tenant, name)
        with _mapped():
            pipe = self._r.pipeline()
            if lengths:
                pipe.hincrbyfloat(key, "sum", float(sum(lengths)))
                pipe.hincrby(key, "count", len(lengths))
            pipe.hmget(key, ["sum", "count"])
            total, count = pipe.execute()[-1]
        if not count or int(count) == 0:
            return _DEFAULT_BM25_AVG_LEN
        return max(1.0, float(total) / int(count))

    # ------------------------------------------------------------ the lifecycle

    def accept(
        self,
        tenant: str,
        collection: str,
        job: JobRecord,
        docs: Sequence[NewDocument],
        *,
        incarnation: str,
        quota: TenantQuota | None = None,
    ) -> dict[str, int]:
        """Record a job and its documents in one step; each document takes a new version.

        A document whose content is unchanged (and did not fail) keeps its version and is
        left alone (0 in the result). A newer version supersedes the older one's job entry.
        A failed entry for a document that exists (indexed, in flight or deleted) leaves it
        as it is (0): only the job records the failure. Returns each document's new version.

        Raises:
            NotFound: the collection is not the ``incarnation`` the caller read (deleted, or
                deleted and created again): nothing was written.
            QuotaExceeded: the documents would take the tenant past ``quota`` (checked in
                the same step as the writes: nothing is written then).
        """
        payload = self._accept_payload(docs)
        flat = self._run(
            "accept",
            tenant,
            collection,
            job.model_dump_json(),
            job.id,
            time.time(),
            payload,
            incarnation,
            quota.arg() if quota else "",
        )
        if flat and isinstance(flat[0], list):
            raise _quota_error(flat[0])
        if len(flat) % 2:
            raise NotFound(f"collection {collection!r} does not exist", code="collection_not_found")
        return {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}

    def check_quota(
        self, tenant: str, collection: str, docs: Sequence[NewDocument], quota: TenantQuota
    ) -> None:
        """Refuse (``QuotaExceeded``) documents ``accept`` would refuse, writing nothing: an
        early answer before blobs are written; ``accept`` checks again atomically."""
        out = self._run("quota", tenant, collection, self._accept_payload(docs), quota.arg())
        if out:
            raise _quota_error(out[0])

    def check_new_collection(
        self,
        tenant: str,
        *,
        documents: int,
        stored_bytes: int,
        max_collections: int,
        quota: TenantQuota | None,
    ) -> None:
        """Refuse (``QuotaExceeded``) a restore that would take the tenant past its cap of
        collections (0: none) or its quota, writing nothing; ``adopt_restored`` checks again
        atomically."""
        arg = quota.arg() if quota else ""
        out = self._run("fits", tenant, documents, stored_bytes, max_collections, arg)
        if out:
            raise _quota_error(out[0], "this restore")

    def adopt_restored(
        self, record_json: str, *, max_collections: int, quota: TenantQuota | None
    ) -> None:
        """A restore's last step: its deletion marker (``record_json``, with the documents
        written under it) becomes the collection, under the cap and the quota, at once.

        Raises:
            Conflict: the marker is gone (deleted meanwhile), or the name is taken.
            QuotaExceeded: over the cap of collections or the quota; nothing changed.
        """
        rec = CollectionRecord.model_validate_json(record_json)
        arg = quota.arg() if quota else ""
        out = self._run("adopt", rec.tenant, rec.name, record_json, max_collections, arg)
        if out == ["ok"]:
            return
        if out == ["gone"]:
            raise Conflict(f"collection {rec.name!r} was deleted during the restore")
        if out == ["taken"]:
            raise Conflict(f"collection {rec.name!r} already exists", code="collection_exists")
        raise _quota_error(out[0], "this restore")

    @staticmethod
    def _accept_payload(docs: Sequence[NewDocument]) -> str:
        payload = []
        for item in docs:
            rec = item.record
            fields = rec.model_dump(mode="json", exclude=set(_LIFECYCLE_FIELDS))
            payload.append(
                {
                    "id": rec.id,
                    "status": rec.status.value,
                    "hash": rec.content_hash or "",
                    "fields": {name: _enc(value) for name, value in fields.items()},
                    "error": (
                        json.dumps({"reason": item.error[0], "message": item.error[1]})
                        if item.error
                        else ""
                    ),
                }
            )
        return json.dumps(payload, ensure_ascii=False)

    def transition(
        self,
        tenant: str,
        collection: str,
        doc_id: str,
        to: DocStatus,
        *,
        version: int | None = None,
        job_id: str | None = None,
        from_: Sequence[DocStatus] | None = None,
        owner: Owner = KEEP,
        error: tuple[str, str] | None = None,
        **fields: Any,
    ) -> Transition:
        """Move a document to ``to`` if it is still at ``version`` (or still ``job_id``'s).

        ``from_`` limits the states it may come from (default: any unfinished one);
        ``owner`` says how its claim is checked and changed. A stale or refused change is
        dropped, atomically with the check, and says why.
        """
        if (version is None) == (job_id is None):
            raise ValueError("give exactly one of version and job_id")
        expect = f"v:{version}" if version is not None else f"job:{job_id}"
        if error is not None:
            fields = {**fields, "error_reason": error[0], "error_message": error[1]}
        err = json.dumps({"reason": error[0], "message": error[1]}) if error else ""
        applied, why = self._run(
            "transition",
            tenant,
            collection,
            doc_id,
            expect,
            to.value,
            time.time(),
            ",".join(s.value for s in from_) if from_ else "*",
            owner.arg(),
            err,
            *_enc_fields(fields),
        )
        return Transition(bool(applied), "" if applied else str(why))

    def delete(self, tenant: str, collection: str, doc_id: str) -> int:
        """Tombstone a document at a new version; ``NotFound`` if it does not exist."""
        version = int(self._run("delete", tenant, collection, doc_id, time.time()))
        if not version:
            raise NotFound(f"document {doc_id!r} does not exist", code="document_not_found")
        return version

    def forget(self, tenant: str, collection: str, doc_id: str, version: int) -> bool:
        """Drop a tombstone once its points are gone (only the same version)."""
        return bool(self._run("forget", tenant, collection, doc_id, version))

    def reap(self, ref: DocRef, max_crashes: int) -> tuple[str, int]:
        """Requeue (or fail, after ``max_crashes``) a claimed document whose owner died."""
        result, version = self._run(
            "reap", ref.tenant, ref.collection, ref.doc_id, time.time(), max_crashes
        )
        return str(result), int(version)

    def running(self) -> list[DocRef]:
        """Every claimed document (O(claimed), not O(documents))."""
        with _mapped():
            raw = cast(list[str], self._r.zrange(_k("running"), 0, -1))
        return [DocRef.parse(r) for r in raw]

    def documents_after(
        self, tenant: str, collection: str, seq: float, limit: int
    ) -> list[tuple[str, float]]:
        """Up to ``limit`` existing documents (id, seq) with a seq above ``seq``, in order."""
        with _mapped():
            rows = self._r.zrangebyscore(
                _k("docorder", tenant, collection),
                f"({seq!r}" if seq != float("-inf") else "-inf",
                "+inf",
                start=0,
                num=limit,
                withscores=True,
            )
        return [(str(i), float(s)) for i, s in cast(list[tuple[str, float]], rows)]

    def document_total(self, tenant: str, collection: str) -> int:
        """How many documents exist (not deleted), O(1)."""
        with _mapped():
            return int(self._r.zcard(_k("docorder", tenant, collection)))

    def in_status(self, tenant: str, collection: str, status: DocStatus) -> list[str]:
        """Ids of a collection's documents in ``status``, in upload order."""
        with _mapped():
            return cast(
                list[str], self._r.zrange(_k("st", tenant, collection, status.value), 0, -1)
            )

    def deleted_among(
        self, tenant: str, collection: str, ids: Sequence[str], *, now: float | None = None
    ) -> set[str]:
        """Which of ``ids`` queries must drop: deleted (their points may linger) or expired
        (at ``now``, default the present) and not yet swept. One command (``_GONE``)."""
        if not ids:
            return set()
        cutoff = time.time() if now is None else now
        with _mapped():
            gone = self._gone(
                keys=[_k("st", tenant, collection, "deleted"), _k("expiry", tenant, collection)],
                args=[repr(cutoff), *ids],
            )
        return set(cast(list[str], gone))

    def expire_due(
        self, tenant: str, collection: str, *, now: float, limit: int
    ) -> list[tuple[str, int]]:
        """Tombstone up to ``limit`` documents whose expiry is at or before ``now``.

        Each is checked again and tombstoned in one atomic step (a re-upload that moved its
        expiry on since is left alone). Returns (id, tombstone version) of those tombstoned;
        their points' removal is the caller's to send.
        """
        with _mapped():
            due = cast(
                list[str],
                self._r.zrangebyscore(
                    _k("expiry", tenant, collection), "-inf", repr(now), start=0, num=limit
                ),
            )
        out = []
        for doc_id in due:
            version = int(self._run("expire", tenant, collection, doc_id, repr(now)))
            if version:
                out.append((doc_id, version))
        return out

    # ------------------------------------------------------------ owners and locks

    def heartbeat(self, owner: str, ttl_s: float) -> None:
        """Say ``owner`` is alive for the next ``ttl_s`` seconds."""
        with _mapped():
            self._r.set(_k("owner", owner), "1", px=int(ttl_s * 1000))

    def owner_alive(self, owner: str) -> bool:
        """Whether ``owner``'s heartbeat is still running (its lease has not expired)."""
        with _mapped():
            return bool(owner) and bool(self._r.exists(_k("owner", owner)))

    def retire(self, owner: str) -> None:
        """``owner`` stopped cleanly: what it still holds may be taken at once."""
        with _mapped():
            self._r.delete(_k("owner", owner))

    def lock(self, ref: DocRef, token: str, ttl_s: float) -> bool:
        """Take a document's store-write lock (so no two writes of it interleave)."""
        with _mapped():
            return bool(
                self._r.set(
                    _k("lock", ref.tenant, ref.collection, ref.doc_id),
                    token,
                    nx=True,
                    px=int(ttl_s * 1000),
                )
            )

    def unlock(self, ref: DocRef, token: str) -> None:
        """Release a lock if ``token`` still holds it."""
        key = _k("lock", ref.tenant, ref.collection, ref.doc_id)
        with _mapped():
            self._r.eval(_UNLOCK, 1, key, token)

    def clear_locks(self) -> int:
        """Drop every store-write lock (the only writer is starting: none is held)."""
        with _mapped():
            keys = list(self._r.scan_iter(match=_k("lock", "*"), count=1000))
            return int(self._r.delete(*keys)) if keys else 0

    # ------------------------------------------------------------ documents

    def get_document(self, tenant: str, collection: str, doc_id: str) -> DocumentRecord:
        """Return the document or raise ``NotFound`` (a deleted one is not found)."""
        doc = self.find_document(tenant, collection, doc_id)
        if doc is None or doc.status is DocStatus.DELETED:
            raise NotFound(f"document {doc_id!r} does not exist", code="document_not_found")
        return doc

    def find_document(self, tenant: str, collection: str, doc_id: str) -> DocumentRecord | None:
        """The document's record (tombstones included), or None."""
        with _mapped():
            raw = cast(dict[str, str], self._r.hgetall(_k("doc", tenant, collection, doc_id)))
        return _decode(raw) if raw else None

    def get_documents(self, tenant: str, collection: str, ids: list[str]) -> list[DocumentRecord]:
        """The records with these ids that exist (tombstones included), in the order asked."""
        if not ids:
            return []
        with _mapped():
            pipe = self._r.pipeline(transaction=False)
            for doc_id in ids:
                pipe.hgetall(_k("doc", tenant, collection, doc_id))
            raws = cast(list[dict[str, str]], pipe.execute())
        return [_decode(r) for r in raws if r]

    def list_documents(
        self,
        tenant: str,
        collection: str,
        *,
        status: DocStatus | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[DocumentRecord], int]:
        """A page of documents in upload order, optionally by status; and the total.

        Deleted documents are not listed. Costs O(log n + page), from the indexes.
        """
        if status is DocStatus.DELETED:
            return [], 0
        key = (
            _k("docorder", tenant, collection)
            if status is None
            else _k("st", tenant, collection, status.value)
        )
        with _mapped():
            pipe = self._r.pipeline(transaction=False)
            pipe.zrange(key, offset, offset + limit - 1)
            pipe.zcard(key)
            ids, total = pipe.execute()
        docs = self.get_documents(tenant, collection, ids)
        return [d for d in docs if d.status is not DocStatus.DELETED], int(total)

    def document_counts(self, tenant: str, collection: str) -> dict[str, int]:
        """How many documents are in each status (deleted ones excluded), O(1)."""
        with _mapped():
            raw = cast(dict[str, str], self._r.hgetall(_k("cnt", tenant, collection)))
        return {s: int(n) for s, n in raw.items() if int(n) > 0 and s != DocStatus.DELETED.value}

    def total_counts(self) -> dict[str, int]:
        """Documents by status over every collection of every tenant, O(1)."""
        with _mapped():
            raw = cast(dict[str, str], self._r.hgetall(_k("cnt")))
        return {s: int(n) for s, n in raw.items() if int(n) > 0}

    # ------------------------------------------------------------ jobs

    def get_job(self, tenant: str, job_id: str, *, list_limit: int = _JOB_LIST_LIMIT) -> JobView:
        """The job with its state and counts; ``NotFound`` for another tenant's job.

        Costs O(1) plus the listing of its documents when it has at most ``list_limit``.
        """
        with _mapped():
            pipe = self._r.pipeline(transaction=False)
            pipe.get(_k("job", job_id))
            pipe.hgetall(_k("jobcnt", job_id))
            pipe.hlen(_k("jobdocs", job_id))
            pipe.get(_k("jobfin", job_id))
            raw, counts_raw, total, fin = pipe.execute()
        if raw is None:
            raise NotFound(f"job {job_id!r} does not exist", code="job_not_found")
        job = JobRecord.model_validate_json(raw)
        if job.tenant != tenant:
            raise NotFound(f"job {job_id!r} does not exist", code="job_not_found")
        done = int(counts_raw.pop("_done", 0))
        counts = {s: int(n) for s, n in counts_raw.items() if int(n) > 0}
        documents: dict[str, str] | None = None
        with _mapped():
            if total <= list_limit:
                documents = cast(dict[str, str], self._r.hgetall(_k("jobdocs", job_id)))
            errors_raw = list(
                islice(self._r.hscan_iter(_k("joberr", job_id), count=_ERRORS_LIMIT), _ERRORS_LIMIT)
            )
        errors = {doc_id: json.loads(e) for doc_id, e in errors_raw}
        state = _derive(job, counts, int(total), done)
        return JobView(
            job=job,
            state=state,
            counts=counts,
            total=int(total),
            finished_at=float(fin) if fin and state not in _UNFINISHED else None,
            documents=documents,
            errors=errors,
        )

    def load_job(self, job_id: str) -> JobRecord | None:
        """The raw job record, for workers (no tenant check)."""
        with _mapped():
            raw = self._r.get(_k("job", job_id))
        return None if raw is None else JobRecord.model_validate_json(raw)

    def job_documents(self, job_id: str) -> dict[str, str]:
        """Each document's state within the job (O(job): for cancelling, not for views)."""
        with _mapped():
            return cast(dict[str, str], self._r.hgetall(_k("jobdocs", job_id)))

    def mark_cancelled(self, job: JobRecord) -> None:
        """Record that ``job`` is cancelled (its documents are stopped by the caller)."""
        with _mapped():
            # KEEPTTL: cancelling a finished job must not make it live for ever.
            self._r.set(
                _k("job", job.id),
                job.model_copy(update={"cancelled": True}).model_dump_json(),
                keepttl=True,
            )

    def new_job_id(self) -> str:
        """A fresh job id."""
        return uuid.uuid4().hex


_UNFINISHED = (JobState.QUEUED, JobState.RUNNING)


def _derive(job: JobRecord, counts: dict[str, int], total: int, done: int) -> JobState:
    if done < total:
        started = total - counts.get(DocStatus.QUEUED.value, 0)
        return JobState.RUNNING if started or done else JobState.QUEUED
    if job.cancelled and counts.get(DocStatus.CANCELLED.value, 0):
        return JobState.CANCELLED
    if counts.get(DocStatus.FAILED.value, 0):
        return JobState.COMPLETED_WITH_ERRORS
    return JobState.COMPLETED


@contextmanager
def redis_errors() -> Iterator[None]:
    """Map redis-py errors to ``UpstreamUnavailable`` at one choke point.

    The message names no host or port: it may reach a client. Redis refusing a write at
    its ``maxmemory`` (``noeviction``) is ``redis_out_of_memory`` with a Retry-After: the
    retention sweeps free memory over time, so a later retry may pass.
    """
    try:
        yield
    except redis.RedisError as exc:
        if is_out_of_memory(exc):
            raise UpstreamUnavailable(
                "the job state store (Redis) is full and refuses writes; retry later",
                code="redis_out_of_memory",
                retry_after=OOM_RETRY_AFTER_S,
            ) from exc
        raise UpstreamUnavailable("the job state store (Redis) is unavailable") from exc


# A retention sweep runs every few minutes; a client retrying sooner only adds load.
OOM_RETRY_AFTER_S = 30.0


def is_out_of_memory(exc: BaseException) -> bool:
    """True when Redis refused a command at its maxmemory (also from inside a script)."""
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return True
    # redis-py strips the "OOM" prefix; the rest of Redis's message is stable.
    return isinstance(exc, redis.ResponseError) and "when used memory > 'maxmemory'" in str(exc)


_mapped = redis_errors
