"""A re-index's durable state in Redis, beside the lifecycle's.

Keys (P = "sieve:", t/c = tenant/collection, j = job id):
  P.."rx:job:"..j          hash: the job's progress (tenant, collection, source, target,
                           state, phase, done, total, cursor, owner, crashes, reason, ...)
  P.."rx:active"           set of job ids not yet ended (the lifecycle loop resumes them)
  P.."rx:on:"..t..":"..c   the job id while a re-index runs: writers record what they touch
  P.."rx:dirty:"..t..":"..c  hash document id -> times written since the re-index began
  P.."rx:pause:"..t..":"..c  the job id while the store writes of the collection wait
  P.."rx:gate:"..t..":"..c   zset of the writes in flight (token "owner|uuid" -> when)

The record of the collection (``CollectionRecord.reindex``, its store pointer and model
fields) changes only under WATCH/MULTI, together with these keys, so a switch, a pause or
an abort is one atomic step against every other change of the record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

import redis

from core.defaults import DEFAULT_JOB_RETENTION_S
from core.errors import Conflict, NotFound
from indexing.outbox import OUTBOX_LUA
from indexing.records import (
    CollectionRecord,
    JobRecord,
    JobState,
    JobView,
    ReindexTarget,
)
from indexing.state_store import redis_errors, state_key

__all__ = ["ReindexState", "RxState"]

# A job's ``state`` field; ``switched``, ``cancelling`` and ``failing`` are the durable
# steps after the record changed and before the stores are cleaned up.
RxState = str
TERMINAL_STATES = frozenset({"completed", "cancelled", "failed"})
_VIEW_STATE = {
    "queued": JobState.QUEUED,
    "completed": JobState.COMPLETED,
    "cancelled": JobState.CANCELLED,
    "failed": JobState.FAILED,
}

_ENTER = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""
_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV do redis.call('HINCRBY', KEYS[2], ARGV[i], 1) end
return #ARGV
"""
_SETTLE = """
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
"""
# claim(progress; owner, owner key prefix): -1 ended, -2 held by a live owner, else the
# number of owners that died holding it (a clean stop releases the job: it does not count).
_CLAIM = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'completed' or st == 'cancelled' or st == 'failed' then return -1 end
local cur = redis.call('HGET', KEYS[1], 'owner')
if cur and cur ~= '' and cur ~= ARGV[1] then
  if redis.call('EXISTS', ARGV[2] .. cur) == 1 then return -2 end
  redis.call('HINCRBY', KEYS[1], 'crashes', 1)
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
if st == 'queued' then redis.call('HSET', KEYS[1], 'state', 'running') end
return tonumber(redis.call('HGET', KEYS[1], 'crashes') or '0')
"""
_RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then redis.call('HSET', KEYS[1], 'owner', '') end
return 1
"""
_FINISH = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'completed' or st == 'cancelled' or st == 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'finished_at', ARGV[2], 'owner', '')
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'reason', ARGV[3], 'message', ARGV[4]) end
redis.call('SREM', KEYS[2], ARGV[5])
-- The webhook event, in this same step (outbox.lua is prepended to this script).
local where = redis.call('HMGET', KEYS[1], 'tenant', 'collection')
if where[1] and where[2] then
  local etype = 'job.' .. ARGV[1]
  if ARGV[1] == 'completed' then etype = 'reindex.completed' end
  wh_emit(where[1], where[2], etype, {collection = where[2], job_id = ARGV[5], kind = 'reindex',
    state = ARGV[1], reason = ARGV[3], message = ARGV[4]}, ARGV[2])
end
local ttl = tonumber(ARGV[6])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return 1
"""


class ReindexState:
    """The Redis operations of a re-index (sync; one per process, thread-safe)."""

    def __init__(
        self, client: redis.Redis, *, job_retention_s: float = DEFAULT_JOB_RETENTION_S
    ) -> None:
        self._r = client
        # An ended job's progress and record expire this long after it ended (0: kept for ever).
        self._job_ttl_s = job_retention_s
        self._enter = client.register_script(_ENTER)
        self._touch = client.register_script(_TOUCH)
        self._settle = client.register_script(_SETTLE)
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._finish = client.register_script(OUTBOX_LUA + _FINISH)

    # ------------------------------------------------------------ keys

    @staticmethod
    def _c(part: str, tenant: str, collection: str) -> str:
        return state_key("rx", part, tenant, collection)

    @staticmethod
    def _job(job_id: str) -> str:
        return state_key("rx", "job", job_id)

    _ACTIVE = state_key("rx", "active")

    # ------------------------------------------------------------ the record, atomically

    def _guarded(
        self,
        tenant: str,
        name: str,
        change: Callable[[CollectionRecord | None, redis.client.Pipeline], bool],
        *,
        watch: tuple[str, ...] = (),
    ) -> bool:
        """Read the record under WATCH and let ``change`` queue its writes (True) or not."""
        key = state_key("collections", tenant)
        with redis_errors():
            while True:
                with self._r.pipeline() as pipe:
                    try:
                        pipe.watch(key, *watch)  # type: ignore[no-untyped-call]
                        raw = pipe.hget(key, name)
                        rec = None if raw is None else CollectionRecord.model_validate_json(raw)
                        pipe.multi()
                        if not change(rec, pipe):
                            pipe.reset()
                            return False
                        pipe.execute()
                    except redis.WatchError:
                        continue
                    return True

    def new_generation(self) -> int:
        """A generation number never used before (the lifecycle's global counter)."""
        with redis_errors():
            return int(self._r.incr(state_key("version")))

    def begin(self, job: JobRecord, target: ReindexTarget, *, total: int) -> CollectionRecord:
        """Record the job and point the collection at the generation being built, at once.

        Raises:
            NotFound: the collection is gone.
            Conflict: a re-index of it is already under way (``reindex_in_progress``).
        """
        out: list[CollectionRecord] = []
        why: list[str] = []

        def change(rec: CollectionRecord | None, pipe: redis.client.Pipeline) -> bool:
            if rec is None:
                why.append("gone")
                return False
            if rec.reindex is not None:
                why.append(rec.reindex.job_id)
                return False
            new = rec.model_copy(update={"reindex": target, "ids": rec.point_ns})
            pipe.hset(state_key("collections", job.tenant), job.collection, new.model_dump_json())
            pipe.set(state_key("job", job.id), job.model_dump_json())
            pipe.hset(
                self._job(job.id),
                mapping={
                    "tenant": job.tenant,
                    "collection": job.collection,
                    "source": rec.store_name,
                    "target": target.store,
                    "state": "queued",
                    "phase": "building",
                    "done": 0,
                    "total": total,
                    "cursor": "-inf",
                    "owner": "",
                    "crashes": 0,
                },
            )
            pipe.set(self._c("on", job.tenant, job.collection), job.id)
            pipe.sadd(self._ACTIVE, job.id)
            out.append(new)
            return True

        if not self._guarded(job.tenant, job.collection, change):
            if why == ["gone"]:
                raise NotFound(
                    f"collection {job.collection!r} does not exist", code="collection_not_found"
                )
            raise Conflict(
                f"collection {job.collection!r} is being re-indexed (job {why[0]})",
                code="reindex_in_progress",
            )
        return out[0]

    def pause(self, job: JobRecord) -> bool:
        """Stop the collection's store writes (they wait) while this job is still its re-index."""

        def change(rec: CollectionRecord | None, pipe: redis.client.Pipeline) -> bool:
            if not _ours(rec, job.id):
                return False
            pipe.set(self._c("pause", job.tenant, job.collection), job.id)
            pipe.hset(self._job(job.id), "phase", "paused")
            return True

        return self._guarded(job.tenant, job.collection, change)

    def switch(self, job: JobRecord) -> bool:
        """The switch: the record points at the new generation, with its model fields.

        One MULTI with the end of the pause; refused (False) when the job was cancelled or
        the collection deleted first (the job key and the record are both watched).
        """
        job_key = state_key("job", job.id)

        def change(rec: CollectionRecord | None, pipe: redis.client.Pipeline) -> bool:
            raw = self._r.get(job_key)
            if rec is None or rec.reindex is None or rec.reindex.job_id != job.id or raw is None:
                return False
            if JobRecord.model_validate_json(raw).cancelled:
                return False
            target = rec.reindex
            new = rec.model_copy(
                update={
                    "store": target.store,
                    "generation": target.generation,
                    "embedding_model": target.embedding_model,
                    "dimension": target.dimension,
                    "late_model": target.late_model,
                    "late_dimension": target.late_dimension,
                    "reindex": None,
                }
            )
            pipe.hset(state_key("collections", job.tenant), job.collection, new.model_dump_json())
            self._clear(pipe, job)
            pipe.hset(self._job(job.id), mapping={"state": "switched", "phase": "switched"})
            return True

        return self._guarded(job.tenant, job.collection, change, watch=(job_key,))

    def abort(self, job: JobRecord, state: RxState, reason: str, message: str) -> None:
        """Take the job off the record (the old generation keeps serving) and mark it
        ``cancelling`` / ``failing`` until its store collection is dropped."""

        def change(rec: CollectionRecord | None, pipe: redis.client.Pipeline) -> bool:
            if _ours(rec, job.id):
                assert rec is not None
                new = rec.model_copy(update={"reindex": None})
                pipe.hset(
                    state_key("collections", job.tenant), job.collection, new.model_dump_json()
                )
                self._clear(pipe, job)
            pipe.hset(
                self._job(job.id), mapping={"state": state, "reason": reason, "message": message}
            )
            return True

        self._guarded(job.tenant, job.collection, change)

    def _clear(self, pipe: redis.client.Pipeline, job: JobRecord) -> None:
        for part in ("pause", "dirty", "on"):
            pipe.delete(self._c(part, job.tenant, job.collection))

    # ------------------------------------------------------------ the job

    def progress(self, job_id: str) -> dict[str, str]:
        """The job's progress hash (empty when there is none)."""
        with redis_errors():
            return cast(dict[str, str], self._r.hgetall(self._job(job_id)))

    def set_progress(self, job_id: str, **fields: Any) -> None:
        """Update progress fields."""
        with redis_errors():
            self._r.hset(self._job(job_id), mapping={k: str(v) for k, v in fields.items()})

    def add_done(self, job_id: str, n: int, *, cursor: float, total: int) -> None:
        """Count ``n`` more documents built and move the cursor past them."""
        with redis_errors():
            pipe = self._r.pipeline()
            pipe.hincrby(self._job(job_id), "done", n)
            pipe.hset(self._job(job_id), mapping={"cursor": repr(cursor), "total": total})
            pipe.execute()

    def claim(self, job_id: str, owner: str) -> int:
        """Own the job: -1 ended, -2 held by a live owner, else how many owners died on it."""
        with redis_errors():
            return int(self._claim(keys=[self._job(job_id)], args=[owner, state_key("owner", "")]))

    def release(self, job_id: str, owner: str) -> None:
        """Let the job go (a clean stop): the next process resumes it at once."""
        with redis_errors():
            self._release(keys=[self._job(job_id)], args=[owner])

    def finish(self, job_id: str, state: RxState, reason: str = "", message: str = "") -> bool:
        """End the job (once: a later call changes nothing)."""
        with redis_errors():
            return bool(
                self._finish(
                    keys=[self._job(job_id), self._ACTIVE, state_key("job", job_id)],
                    args=[
                        state,
                        repr(time.time()),
                        reason,
                        message,
                        job_id,
                        round(self._job_ttl_s * 1000),
                    ],
                )
            )

    def active(self) -> list[str]:
        """Jobs not yet ended."""
        with redis_errors():
            return sorted(cast(set[str], self._r.smembers(self._ACTIVE)))

    def view(self, job: JobRecord) -> JobView:
        """The job as ``GET /v1/jobs/{id}`` shows it: state, documents done of total."""
        p = self.progress(job.id)
        raw = p.get("state", "queued")
        state = _VIEW_STATE.get(raw, JobState.RUNNING)
        total, done = int(p.get("total", 0)), int(p.get("done", 0))
        errors = {}
        if raw == "failed":
            errors = {"reindex": {"reason": p.get("reason", ""), "message": p.get("message", "")}}
        fin = p.get("finished_at")
        return JobView(
            job=job,
            state=state,
            counts={"done": done, "remaining": max(0, total - done)},
            total=total,
            finished_at=float(fin) if fin and raw in TERMINAL_STATES else None,
            documents=None,
            errors=errors,
        )

    # ------------------------------------------------------------ the writers' side

    def enter(self, tenant: str, collection: str, token: str) -> bool:
        """A store write of the collection starts; False while its writes are paused."""
        with redis_errors():
            return bool(
                self._enter(
                    keys=[
                        self._c("pause", tenant, collection),
                        self._c("gate", tenant, collection),
                    ],
                    args=[token, repr(time.time())],
                )
            )

    def leave(self, tenant: str, collection: str, token: str) -> None:
        """The store write is done (or failed)."""
        with redis_errors():
            self._r.zrem(self._c("gate", tenant, collection), token)

    def stop_writes(
        self,
        tenant: str,
        collection: str,
        *,
        timeout_s: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> bool:
        """Hold the collection's store writes for its deletion; wait for those in flight.

        A write refused meanwhile is sent again later and then finds the collection gone
        (or another incarnation). The hold ends with the collection's keys
        (``StateStore.delete_collection``). False when live writes are still inside after
        ``timeout_s``.
        """
        with redis_errors():
            self._r.set(self._c("pause", tenant, collection), "delete")
        deadline = time.monotonic() + timeout_s
        while self.live_writers(tenant, collection):
            if time.monotonic() >= deadline:
                return False
            sleep(0.02)
        return True

    def live_writers(self, tenant: str, collection: str) -> int:
        """Writes of the collection in flight whose owner is alive (dead ones are pruned)."""
        key = self._c("gate", tenant, collection)
        with redis_errors():
            tokens = cast(list[str], self._r.zrange(key, 0, -1))
            live = 0
            for token in tokens:
                owner = token.split("|", 1)[0]
                if self._r.exists(state_key("owner", owner)):
                    live += 1
                else:
                    self._r.zrem(key, token)
            return live

    def touch(self, tenant: str, collection: str, doc_ids: list[str]) -> None:
        """The store writer changed these documents: a running re-index syncs them again."""
        if not doc_ids:
            return
        with redis_errors():
            self._touch(
                keys=[self._c("on", tenant, collection), self._c("dirty", tenant, collection)],
                args=doc_ids,
            )

    def dirty(self, tenant: str, collection: str) -> dict[str, str]:
        """Documents written since the re-index began (id -> a change counter)."""
        with redis_errors():
            return cast(dict[str, str], self._r.hgetall(self._c("dirty", tenant, collection)))

    def settle(self, tenant: str, collection: str, synced: dict[str, str]) -> None:
        """Forget the documents synced, unless they were written again meanwhile."""
        if not synced:
            return
        args = [part for pair in synced.items() for part in pair]
        with redis_errors():
            self._settle(keys=[self._c("dirty", tenant, collection)], args=args)

    def paused(self, tenant: str, collection: str) -> bool:
        """True while the collection's writes wait for a switch."""
        with redis_errors():
            return bool(self._r.exists(self._c("pause", tenant, collection)))


def _ours(rec: CollectionRecord | None, job_id: str) -> bool:
    return rec is not None and rec.reindex is not None and rec.reindex.job_id == job_id
