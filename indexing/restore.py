"""Restore a collection bundle into this Sieve, on whichever store adapter it runs.

Nothing is embedded again: the bundle's vectors are upserted as they are. The order makes
it crash-safe and never shows half a collection:

1. the bundle is unpacked and every member checked (``indexing.bundle``): a bad one is
   refused before anything is written;
2. the name is reserved with a deletion marker holding the new record (create is refused
   meanwhile, and a restore that dies leaves only what ``DELETE`` of the name cleans up:
   the marker names the store collection);
3. the points go into a store collection of a fresh generation, then the blobs, the
   document records and feedback, all under the marker;
4. one atomic step turns the marker into the collection (queries see all of it at once),
   under the tenant's cap of collections and its quota of documents and stored bytes
   (checked first too, before anything is written).

A failure in 2-4 removes everything written so far. A restore whose process died (kill -9)
cannot: from 2 to 4 it is listed in ``sieve:restores`` with its lease owner (a heartbeat,
``indexing.heartbeat``), and once that lease expired ``clear_abandoned_restores`` (the
API's lifecycle loop, and a restore of the same name) removes what it wrote.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, cast

from pydantic import ValidationError

from core.errors import Conflict, InvalidInput
from core.types import (
    API_COLLECTION_NAME_PATTERN,
    ChunkPayload,
    ChunkPoint,
    SparseVec,
    StoreCollectionSpec,
)
from indexing.bundle import BundleContents, BundleModels
from indexing.feedback import FeedbackStore, Judgment
from indexing.records import (
    CollectionRecord,
    DocStatus,
    DocumentRecord,
    generation_store_name,
    store_name_for,
)
from indexing.reindex_state import ReindexState
from indexing.state_store import StateStore, TenantQuota, redis_errors, state_key
from ingest.blob_store import BlobStore, blob_key
from retriever.multivector import pack
from retriever.store import ChunkStore

__all__ = ["RestoreResult", "clear_abandoned_restores", "restore_bundle"]

log = logging.getLogger("sieve.indexing")

# Points per upsert: Edge writes ~10k points/s, and syncs its write-ahead log once per call.
_UPSERT_BATCH = 512
_DOC_BATCH = 500

# Reserve the name: free, and no deletion of it under way; list the restore under way
# (KEYS[3], field ARGV[3]: its owner and record). 1 reserved, 0 taken, -1 deleting.
_RESERVE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
return 1
"""
# Forget a restore under way, if the entry is still this one (not a later restore's).
_UNLIST = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
"""
# Write restored documents (indexed, each at a fresh version) while the marker is ours.
_DOCS = """
local P = "sieve:"
if redis.call('GET', KEYS[1]) ~= ARGV[3] then return -1 end
local t, c = ARGV[1], ARGV[2]
for _, d in ipairs(cjson.decode(ARGV[4])) do
  local key = P .. "doc:" .. t .. ":" .. c .. ":" .. d.id
  local version = redis.call("INCR", P .. "version")
  redis.call("DEL", key)
  local args = {}
  for name, value in pairs(d.fields) do
    table.insert(args, name)
    table.insert(args, value)
  end
  redis.call("HSET", key, "version", cjson.encode(version), "seq", cjson.encode(version),
    unpack(args))
  redis.call("ZADD", P .. "docorder:" .. t .. ":" .. c, version, d.id)
  redis.call("ZADD", P .. "st:" .. t .. ":" .. c .. ":indexed", version, d.id)
  redis.call("HINCRBY", P .. "cnt:" .. t .. ":" .. c, "indexed", 1)
  redis.call("HINCRBY", P .. "cnt", "indexed", 1)
  -- Its expiry goes with it: the index queries and the sweep read (lifecycle.lua).
  local at = d.fields.expires_at and cjson.decode(d.fields.expires_at)
  if type(at) == "number" then
    redis.call("ZADD", P .. "expiry:" .. t .. ":" .. c, at, d.id)
  end
end
return 1
"""


@dataclass(frozen=True)
class RestoreResult:
    """What a restore created."""

    record: CollectionRecord
    documents: int
    chunks: int
    blobs: int
    feedback: int


def _bad(message: str) -> InvalidInput:
    return InvalidInput(f"not a usable Sieve bundle: {message}", code="bad_bundle")


def _new_record(
    bundle: BundleContents, tenant: str, name: str, generation: int
) -> CollectionRecord:
    try:
        old = CollectionRecord.model_validate(bundle.collection["record"])
    except ValidationError as exc:
        raise _bad("the collection record is malformed") from exc
    models = bundle.manifest.models
    if (old.embedding_model, old.dimension, old.late_model, old.late_dimension) != (
        models.dense_model,
        models.dense_dimension,
        models.late_model,
        models.late_dimension,
    ):
        raise _bad("the collection record and the manifest disagree on the models")
    base = store_name_for(tenant, name)
    return old.model_copy(
        update={
            "tenant": tenant,
            "name": name,
            "store": generation_store_name(base, generation),
            "generation": generation,
            "ids": old.point_ns,  # point ids stay those of the bundle (and of a clean ingest)
            "reindex": None,
            "incarnation": uuid.uuid4().hex,
            # The query log is opt-in by whoever holds the collection: a restored copy
            # (maybe another tenant's) starts with it off; its entries are never bundled.
            "query_log": None,
        }
    )


def _point(chunk: dict[str, Any]) -> ChunkPoint:
    try:
        sparse = chunk["sparse"]
        late = chunk["late"]
        return ChunkPoint(
            id=str(chunk["id"]),
            dense=chunk["dense"],
            sparse=None if sparse is None else SparseVec(indices=sparse[0], values=sparse[1]),
            payload=ChunkPayload.model_validate(chunk["payload"]),
            late=None if late is None else pack(late),
        )
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise _bad("a chunk is malformed") from exc


def _doc_fields(raw: dict[str, Any], job_id: str) -> dict[str, Any]:
    try:
        doc = DocumentRecord.model_validate(raw)
    except ValidationError as exc:
        raise _bad("a document record is malformed") from exc
    fields = doc.model_dump(mode="json", exclude={"version", "seq"})
    # The upload's original bytes are not in a bundle (its chunks and page images are).
    fields.update(status=DocStatus.INDEXED.value, job_id=job_id, owner="", crashes=0, blob_key=None)
    return {"id": doc.id, "fields": {k: json.dumps(v) for k, v in fields.items()}}


def _size(bundle: BundleContents) -> tuple[int, int]:
    """The bundle's documents and their stored bytes (the quotas count each record's size)."""
    documents = stored = 0
    for raw in bundle.documents():
        documents += 1
        size = raw.get("size") if isinstance(raw, dict) else None
        stored += size if isinstance(size, int) and size > 0 else 0
    return documents, stored


class _Restore:
    def __init__(
        self,
        *,
        bundle: BundleContents,
        rec: CollectionRecord,
        state: StateStore,
        store: ChunkStore,
        blobs: BlobStore,
        feedback: FeedbackStore | None,
        owner: str,
    ) -> None:
        self.bundle, self.rec, self.state, self.store = bundle, rec, state, store
        self.blobs, self.feedback = blobs, feedback
        self.marker = state_key("coldel", rec.tenant, rec.name)
        self.record_json = rec.model_dump_json()
        self.entry = json.dumps({"owner": owner, "record": self.record_json})
        raw = state.raw()
        self._reserve = raw.register_script(_RESERVE)
        self._docs = raw.register_script(_DOCS)

    def reserve(self) -> None:
        got = self._try_reserve()
        if got < 0 and clear_abandoned_restores(
            self.state, self.store, self.feedback, only=(self.rec.tenant, self.rec.name)
        ):
            got = self._try_reserve()  # an earlier restore of the name had died: now gone
        if got == 0:
            raise Conflict(
                f"collection {self.rec.name!r} already exists; restore it under another name "
                "(--as NAME) or delete it first",
                code="collection_exists",
            )
        if got < 0:
            raise Conflict(
                f"collection {self.rec.name!r} is being deleted (or restored); delete it "
                "again to finish, or retry shortly",
                code="collection_deleting",
            )

    def _try_reserve(self) -> int:
        with redis_errors():
            return int(
                self._reserve(
                    keys=[state_key("collections", self.rec.tenant), self.marker, _RESTORES],
                    args=[self.rec.name, self.record_json, self.field, self.entry],
                )
            )

    @property
    def field(self) -> str:
        """This restore's field of ``sieve:restores``."""
        return _field(self.rec.tenant, self.rec.name)

    def points(self) -> int:
        spec = StoreCollectionSpec(
            name=self.rec.store_name,
            dense_size=self.rec.dimension,
            sparse=True,
            late_size=self.rec.late_dimension,
        )
        self.store.create_collection(spec)
        batch: list[ChunkPoint] = []
        total = 0
        for chunk in self.bundle.chunks():
            batch.append(_point(chunk))
            if len(batch) >= _UPSERT_BATCH:
                self.store.upsert(self.rec.store_name, batch)
                total += len(batch)
                batch = []
        if batch:
            self.store.upsert(self.rec.store_name, batch)
            total += len(batch)
        if total != self.bundle.manifest.counts.get("chunks", total):
            raise _bad("the chunk count differs from the manifest's")
        return total

    def blob_copies(self) -> int:
        for key in self.bundle.blobs:
            data = self.bundle.blob(key)
            if blob_key(data) != key:
                raise _bad(f"blob {key[:12]}... does not hash to its name")
            self.blobs.put(data)
        return len(self.bundle.blobs)

    def documents(self, job_id: str) -> int:
        batch: list[dict[str, Any]] = []
        total = 0
        for raw in self.bundle.documents():
            batch.append(_doc_fields(raw, job_id))
            if len(batch) >= _DOC_BATCH:
                total += self._write_docs(batch)
                batch = []
        if batch:
            total += self._write_docs(batch)
        bm25 = self.bundle.collection.get("bm25len") or {}
        if isinstance(bm25, dict) and bm25:
            with redis_errors():
                self.state.raw().hset(
                    state_key("bm25len", self.rec.tenant, self.rec.name),
                    mapping={str(k): str(v) for k, v in bm25.items()},
                )
        return total

    def _write_docs(self, batch: Sequence[dict[str, Any]]) -> int:
        with redis_errors():
            ok = int(
                self._docs(
                    keys=[self.marker],
                    args=[self.rec.tenant, self.rec.name, self.record_json, json.dumps(batch)],
                )
            )
        if ok != 1:
            raise Conflict(f"collection {self.rec.name!r} was deleted during the restore")
        return len(batch)

    def judgments(self) -> int:
        data = self.bundle.read_extra("feedback.jsonl")
        if data is None or self.feedback is None:
            return 0
        count = 0
        for line in data.decode("utf-8").splitlines():
            if line.strip():
                try:
                    judgment = Judgment.model_validate_json(line)
                except ValidationError as exc:
                    raise _bad("a feedback line is malformed") from exc
                self.feedback.add(self.rec.tenant, self.rec.name, judgment)
                count += 1
        return count

    def commit(self, max_collections: int, quota: TenantQuota | None) -> None:
        self.state.adopt_restored(self.record_json, max_collections=max_collections, quota=quota)

    def undo(self) -> None:
        """Remove whatever this restore wrote (the marker last: the name is free after)."""
        _remove(self.state, self.store, self.feedback, self.rec, self.entry)


_RESTORES = state_key("restores")


def _field(tenant: str, name: str) -> str:
    return f"{tenant}\n{name}"


def _remove(
    state: StateStore,
    store: ChunkStore,
    feedback: FeedbackStore | None,
    rec: CollectionRecord,
    entry: str,
) -> None:
    """Remove a restore's points, feedback and records, then its entry (each step is
    idempotent: a removal that dies is done again by the next one)."""
    marker = state_key("coldel", rec.tenant, rec.name)
    with redis_errors():
        ours = state.raw().get(marker) == rec.model_dump_json()
    live = state.find_collection(rec.tenant, rec.name)
    # Its store collection is of a fresh generation: no other collection ever uses it.
    if live is None or live.store_name != rec.store_name:
        with suppress(Exception):
            if store.collection_exists(rec.store_name):
                store.drop_collection(rec.store_name)
    if ours:
        with suppress(Exception):
            if feedback is not None:
                feedback.clear(rec.tenant, rec.name)
        with suppress(Exception):
            state.delete_collection(rec.tenant, rec.name)
    with suppress(Exception), redis_errors():
        state.raw().eval(_UNLIST, 1, _RESTORES, _field(rec.tenant, rec.name), entry)


def clear_abandoned_restores(
    state: StateStore,
    store: ChunkStore,
    feedback: FeedbackStore | None,
    *,
    only: tuple[str, str] | None = None,
) -> int:
    """Remove what restores whose process died wrote (their lease owner is not alive);
    ``only``: just the restore of that (tenant, name). Returns how many were removed."""
    with redis_errors():
        if only is None:
            entries = cast(dict[str, str], state.raw().hgetall(_RESTORES))
        else:
            one = state.raw().hget(_RESTORES, _field(*only))
            entries = {} if one is None else {_field(*only): cast(str, one)}
    cleared = 0
    for entry in entries.values():
        data = json.loads(entry)
        if state.owner_alive(str(data.get("owner", ""))):
            continue
        rec = CollectionRecord.model_validate_json(data["record"])
        log.warning(
            "removing a restore whose process died",
            extra={"collection": rec.name, "owner": data.get("owner", "")},
        )
        _remove(state, store, feedback, rec, entry)
        cleared += 1
    return cleared


def restore_bundle(
    bundle: BundleContents,
    *,
    tenant: str,
    name: str | None,
    state: StateStore,
    store: ChunkStore,
    blobs: BlobStore,
    feedback: FeedbackStore | None,
    check_models: Callable[[BundleModels], None],
    max_collections: int = 0,
    quota: TenantQuota | None = None,
    owner: str = "",
    after_points: Callable[[], None] | None = None,
) -> RestoreResult:
    """Create collection ``name`` (default: the bundle's) from a verified bundle.

    ``check_models`` refuses models the target does not serve (raise to refuse);
    ``owner`` is the lease (``Heartbeat.lease``) the restore runs under: once it expired
    (the process died) ``clear_abandoned_restores`` removes what the restore wrote;
    ``after_points`` is a test hook that runs once the points are written.

    Raises:
        InvalidInput: ``bad_bundle``, or what ``check_models`` raised; nothing written.
        Conflict: the name is taken (or being deleted): nothing written.
        QuotaExceeded: the tenant would hold more than ``max_collections`` collections, or
            more documents or stored bytes than ``quota``: nothing (left) written.
    """
    target = name or bundle.manifest.collection
    if not re.fullmatch(API_COLLECTION_NAME_PATTERN, target):
        raise InvalidInput(f"collection name {target!r} is not allowed", code="invalid_name")
    check_models(bundle.manifest.models)
    documents, stored = _size(bundle)
    state.check_new_collection(
        tenant,
        documents=documents,
        stored_bytes=stored,
        max_collections=max_collections,
        quota=quota,
    )
    generation = ReindexState(state.raw()).new_generation()
    rec = _new_record(bundle, tenant, target, generation)
    job = _Restore(
        bundle=bundle,
        rec=rec,
        state=state,
        store=store,
        blobs=blobs,
        feedback=feedback,
        owner=owner,
    )
    job.reserve()
    try:
        chunks = job.points()
        if after_points is not None:
            after_points()
        copied = job.blob_copies()
        documents = job.documents(f"restore-{uuid.uuid4().hex[:16]}")
        judged = job.judgments()
        job.commit(max_collections, quota)
    except BaseException:
        job.undo()
        raise
    log.info(
        "collection restored",
        extra={"collection": target, "documents": documents, "chunks": chunks},
    )
    return RestoreResult(rec, documents, chunks, copied, judged)
