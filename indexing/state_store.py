"""Durable state in Redis: collections, documents and jobs, shared by the API and the workers.

Everything a job reports (progress counts, its overall state) is derived from the
per-document states on read, so there is no counter that can drift after a crash.
Redis runs with AOF in every mode, so this survives restarts of every process.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import redis

from core.errors import Conflict, NotFound, UpstreamUnavailable
from indexing.records import (
    TERMINAL,
    CollectionRecord,
    DocStatus,
    DocumentRecord,
    JobRecord,
    JobState,
    JobView,
)

__all__ = ["StateStore"]

_PREFIX = "sieve"
# Used only before a collection has any chunk: a 256-token chunk holds ~150 BM25 terms.
_DEFAULT_BM25_AVG_LEN = 150.0


def _k(*parts: str) -> str:
    return ":".join((_PREFIX, *parts))


class StateStore:
    """Collections, documents and jobs in Redis (sync; the API calls it from a thread)."""

    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    @classmethod
    def from_url(cls, url: str, *, socket_timeout: float = 5.0) -> StateStore:
        """Connect to ``url`` (decoded responses)."""
        client = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=socket_timeout, health_check_interval=30
        )
        return cls(client)

    def close(self) -> None:
        """Close the connection pool."""
        self._r.close()

    def ping(self) -> bool:
        """True when Redis answers."""
        try:
            return bool(self._r.ping())
        except redis.RedisError:
            return False

    # ------------------------------------------------------------ collections

    def create_collection(self, record: CollectionRecord) -> None:
        """Register a collection; ``Conflict`` if the tenant already has one by that name."""
        with _mapped():
            created = self._r.hsetnx(
                _k("collections", record.tenant), record.name, record.model_dump_json()
            )
            self._r.sadd(_k("tenants"), record.tenant)
        if not created:
            raise Conflict(f"collection {record.name!r} already exists", code="collection_exists")

    def tenants(self) -> list[str]:
        """Every tenant that ever created a collection."""
        with _mapped():
            return sorted(cast(set[str], self._r.smembers(_k("tenants"))))

    def update_collection(self, record: CollectionRecord) -> None:
        """Overwrite a collection's record (e.g. its measured BM25 average length)."""
        with _mapped():
            self._r.hset(_k("collections", record.tenant), record.name, record.model_dump_json())

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

    def delete_collection(self, tenant: str, name: str) -> None:
        """Forget a collection and its document records."""
        with _mapped():
            pipe = self._r.pipeline()
            pipe.hdel(_k("collections", tenant), name)
            pipe.delete(
                _k("docs", tenant, name), _k("docorder", tenant, name), _k("bm25len", tenant, name)
            )
            pipe.execute()

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

    # ------------------------------------------------------------ documents

    def put_documents(self, tenant: str, collection: str, docs: Iterable[DocumentRecord]) -> None:
        """Write document records (new or replacing), keeping first-seen order for paging."""
        with _mapped():
            pipe = self._r.pipeline()
            now = time.time()
            for doc in docs:
                pipe.hset(_k("docs", tenant, collection), doc.id, doc.model_dump_json())
                pipe.zadd(_k("docorder", tenant, collection), {doc.id: now}, nx=True)
            pipe.execute()

    def get_document(self, tenant: str, collection: str, doc_id: str) -> DocumentRecord:
        """Return the document or raise ``NotFound``."""
        with _mapped():
            raw = self._r.hget(_k("docs", tenant, collection), doc_id)
        if raw is None:
            raise NotFound(f"document {doc_id!r} does not exist", code="document_not_found")
        return DocumentRecord.model_validate_json(raw)

    def find_document(self, tenant: str, collection: str, doc_id: str) -> DocumentRecord | None:
        """Return the document, or None."""
        try:
            return self.get_document(tenant, collection, doc_id)
        except NotFound:
            return None

    def update_document(
        self, tenant: str, collection: str, doc_id: str, *, job_id: str | None = None, **fields: Any
    ) -> DocumentRecord | None:
        """Change fields of a document atomically; None if it is gone or owned by another job.

        ``job_id`` guards against a stale task: a document re-uploaded by a newer job is
        not touched by the older job's late messages.
        """
        key = _k("docs", tenant, collection)
        result: list[DocumentRecord | None] = [None]

        def apply(pipe: redis.client.Pipeline) -> None:
            raw = pipe.hget(key, doc_id)
            result[0] = None
            if raw is None:
                return
            doc = DocumentRecord.model_validate_json(str(raw))
            if job_id is not None and doc.job_id != job_id:
                return
            updated = DocumentRecord.model_validate(
                {**doc.model_dump(), **fields, "updated_at": time.time()}
            )
            pipe.multi()
            pipe.hset(key, doc_id, updated.model_dump_json())
            result[0] = updated

        with _mapped():
            self._r.transaction(apply, key)
        return result[0]

    def get_documents(self, tenant: str, collection: str, ids: list[str]) -> list[DocumentRecord]:
        """The documents with these ids that exist, in the order asked."""
        if not ids:
            return []
        with _mapped():
            raws = self._r.hmget(_k("docs", tenant, collection), ids)
        return [DocumentRecord.model_validate_json(r) for r in raws if r is not None]

    def remove_document(self, tenant: str, collection: str, doc_id: str) -> None:
        """Forget a document record."""
        with _mapped():
            pipe = self._r.pipeline()
            pipe.hdel(_k("docs", tenant, collection), doc_id)
            pipe.zrem(_k("docorder", tenant, collection), doc_id)
            pipe.execute()

    def list_documents(
        self,
        tenant: str,
        collection: str,
        *,
        status: DocStatus | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[DocumentRecord], int]:
        """A page of documents in upload order, optionally by status; and the total."""
        with _mapped():
            ids = cast(list[str], self._r.zrange(_k("docorder", tenant, collection), 0, -1))
            raws = self._r.hmget(_k("docs", tenant, collection), ids) if ids else []
        docs = [DocumentRecord.model_validate_json(r) for r in raws if r is not None]
        if status is not None:
            docs = [d for d in docs if d.status is status]
        return docs[offset : offset + limit], len(docs)

    def document_counts(self, tenant: str, collection: str) -> dict[str, int]:
        """How many documents are in each status."""
        with _mapped():
            raws = self._r.hvals(_k("docs", tenant, collection))
        return dict(Counter(DocumentRecord.model_validate_json(r).status.value for r in raws))

    # ------------------------------------------------------------ jobs

    def create_job(self, job: JobRecord, doc_ids: Iterable[str]) -> None:
        """Record a job and its documents, all queued."""
        with _mapped():
            pipe = self._r.pipeline()
            pipe.set(_k("job", job.id), job.model_dump_json())
            mapping = dict.fromkeys(doc_ids, DocStatus.QUEUED.value)
            if mapping:
                pipe.hset(_k("jobdocs", job.id), mapping=cast(dict[Any, Any], mapping))
            pipe.sadd(_k("jobs", job.tenant), job.id)
            pipe.execute()

    def set_job_doc(self, job_id: str, doc_id: str, status: DocStatus) -> None:
        """Record one document's state within a job."""
        with _mapped():
            self._r.hset(_k("jobdocs", job_id), doc_id, status.value)

    def get_job(self, tenant: str, job_id: str) -> JobView:
        """The job with derived state and counts; ``NotFound`` for another tenant's job."""
        with _mapped():
            raw = self._r.get(_k("job", job_id))
            docs = cast(dict[str, str], self._r.hgetall(_k("jobdocs", job_id)))
        if raw is None:
            raise NotFound(f"job {job_id!r} does not exist", code="job_not_found")
        job = JobRecord.model_validate_json(raw)
        if job.tenant != tenant:
            raise NotFound(f"job {job_id!r} does not exist", code="job_not_found")
        counts = Counter(docs.values())
        return JobView(job=job, state=_derive(job, counts), counts=dict(counts), documents=docs)

    def load_job(self, job_id: str) -> JobRecord | None:
        """The raw job record, for workers (no tenant check)."""
        with _mapped():
            raw = self._r.get(_k("job", job_id))
        return None if raw is None else JobRecord.model_validate_json(raw)

    def cancel_job(self, tenant: str, job_id: str) -> JobView:
        """Mark a job cancelled; documents not yet written are skipped by the workers."""
        view = self.get_job(tenant, job_id)
        job = view.job.model_copy(update={"cancelled": True})
        with _mapped():
            self._r.set(_k("job", job_id), job.model_dump_json())
        return self.get_job(tenant, job_id)

    def new_job_id(self) -> str:
        """A fresh job id."""
        return uuid.uuid4().hex

    def raw(self) -> redis.Redis:
        """The underlying client (for health checks and queue depth)."""
        return self._r


def _derive(job: JobRecord, counts: Counter[str]) -> JobState:
    total = sum(counts.values())
    done = sum(counts[s.value] for s in TERMINAL)
    if job.cancelled and done == total:
        return JobState.CANCELLED
    if done < total:
        started = total - counts[DocStatus.QUEUED.value]
        return JobState.RUNNING if started or done else JobState.QUEUED
    if counts[DocStatus.FAILED.value]:
        return JobState.COMPLETED_WITH_ERRORS
    return JobState.COMPLETED


@contextmanager
def _mapped() -> Iterator[None]:
    """Map redis-py errors to ``UpstreamUnavailable`` at one choke point."""
    try:
        yield
    except redis.RedisError as exc:
        raise UpstreamUnavailable(f"job state store unavailable: {exc}") from exc
