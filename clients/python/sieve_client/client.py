"""The sync and async clients: thin I/O around :mod:`sieve_client.protocol`.

Both classes have the same methods with the same signatures (a test keeps them twins); each
method is one line that builds a :class:`~sieve_client.protocol.Call` and runs it.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

import httpx

from sieve_client import protocol as p
from sieve_client import retry
from sieve_client.errors import (
    BadResponseError,
    JobWaitTimeout,
    SieveClientError,
    error_from_response,
    error_from_transport,
)
from sieve_client.models import (
    CollectionResponse,
    DocStatus,
    DocumentDeletedResponse,
    DocumentResponse,
    DocumentsPageResponse,
    EvaluationReport,
    FeedbackResponse,
    IngestAcceptedResponse,
    JobResponse,
    ModelInfo,
    PolicyResponse,
    QueryFilter,
    QueryLogEntriesResponse,
    QueryLogResponse,
    QueryMode,
    QueryPolicy,
    QueryResponse,
    RestoreResponse,
    SnapshotResponse,
    WebhookCreatedResponse,
    WebhookDeliveriesResponse,
    WebhookEvent,
    WebhookResponse,
)
from sieve_client.protocol import DocumentImage, FileInput, ProgressCallback

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "UPLOAD_TIMEOUT",
    "URL_ENV",
    "AsyncSieveClient",
    "SieveClient",
    "resolve_connection",
]

T = TypeVar("T")

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0, pool=5.0)
# An upload batch can be tens of MB and the server fsyncs every blob before it answers.
UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=5.0, pool=5.0)
_MAX_RETRY_DELAY_S = 30.0
_BACKOFF_BASE_S = 0.5
# Where the API is and which key, as the `sieve` command reads them.
DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "SIEVE_URL"
API_KEY_ENV = "SIEVE_API_KEY"


def resolve_connection(
    base_url: str | None, api_key: str | None, env: Mapping[str, str] | None = None
) -> tuple[str, str | None]:
    """The API's URL and key: an explicit argument, else ``SIEVE_URL`` / ``SIEVE_API_KEY``
    from the environment, else ``http://127.0.0.1:8000`` and no key.

    An explicit empty key (``api_key=""``) means no key, whatever the environment says.
    """
    source = os.environ if env is None else env
    url = base_url if base_url is not None else source.get(URL_ENV) or DEFAULT_URL
    key = api_key if api_key is not None else source.get(API_KEY_ENV)
    return url, key or None


class _Base:
    """What both clients hold: where the API is, the key, the retry and timeout budget."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        *,
        timeout: float | httpx.Timeout,
        upload_timeout: float | httpx.Timeout,
        max_retries: int,
        max_retry_delay_s: float,
        rng: Callable[[], float],
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        base_url, api_key = resolve_connection(base_url, api_key)
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._upload_timeout = (
            upload_timeout
            if isinstance(upload_timeout, httpx.Timeout)
            else httpx.Timeout(upload_timeout)
        )
        self._max_retries = max_retries
        self._max_retry_delay_s = max_retry_delay_s
        self._rng = rng

    def _timeout_for(self, call: p.Call[Any]) -> httpx.Timeout:
        base = self._upload_timeout if call.upload else self._timeout
        if call.wait_s is None or base.read is None:
            return base
        # wait=True: the server holds the answer up to wait_s before it writes a byte.
        return httpx.Timeout(
            connect=base.connect, read=base.read + call.wait_s, write=base.write, pool=base.pool
        )

    def _retry_in(self, resp: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before another try, or None to raise now (the rule of
        :mod:`sieve_client.retry`: a ``Retry-After`` over ``max_retry_delay_s`` is not waited
        for)."""
        if resp.status_code not in p.RETRY_STATUSES or attempt >= self._max_retries:
            return None
        return retry.retry_delay(
            attempt,
            retry_after=retry.parse_retry_after(resp.headers.get("retry-after")),
            base_s=_BACKOFF_BASE_S,
            max_s=self._max_retry_delay_s,
            max_retry_after_s=self._max_retry_delay_s,
            rng=self._rng,
        )

    @staticmethod
    def _finish(call: p.Call[T], resp: httpx.Response) -> T:
        if call.binary:
            return call.parse((resp.content, resp.headers))
        if not call.expect_json:
            return call.parse(None)
        try:
            body = resp.json()
        except ValueError:
            raise BadResponseError(
                f"unexpected response to {call.where}: the body is not JSON", "bad_response"
            ) from None
        return call.parse(body)


class SieveClient(_Base):
    """A typed, synchronous client for the whole Sieve API.

    ``base_url`` / ``api_key`` default to ``SIEVE_URL`` / ``SIEVE_API_KEY`` from the
    environment, then ``http://127.0.0.1:8000`` and no key. Errors come as
    :class:`~sieve_client.errors.SieveClientError` subclasses; 429 and 503 are retried
    (``max_retries`` times, backoff with jitter, never sooner than ``Retry-After``; one over
    ``max_retry_delay_s`` is raised at once, with ``retry_after`` set); every call has a
    timeout.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        upload_timeout: float | httpx.Timeout = UPLOAD_TIMEOUT,
        max_retries: int = 3,
        max_retry_delay_s: float = _MAX_RETRY_DELAY_S,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            timeout=timeout,
            upload_timeout=upload_timeout,
            max_retries=max_retries,
            max_retry_delay_s=max_retry_delay_s,
            rng=rng,
        )
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=self._headers,
            # Connection failures only: retried once, at once (a restarting server).
            transport=transport or httpx.HTTPTransport(retries=1),
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _run(self, call: p.Call[T], progress: ProgressCallback | None = None) -> T:
        attempt = 0
        while True:
            content = (
                p.upload_chunks(call.body, call.files, progress) if call.body is not None else None
            )
            try:
                resp = self._http.request(
                    call.method,
                    call.path,
                    json=call.json,
                    params=call.params,
                    content=content,
                    headers=call.headers,
                    timeout=self._timeout_for(call),
                )
            except httpx.TransportError as exc:
                raise error_from_transport(exc, self.base_url) from exc
            if resp.is_success:
                return self._finish(call, resp)
            delay = self._retry_in(resp, attempt)
            if delay is None:
                raise error_from_response(resp)
            self._sleep(delay)
            attempt += 1

    # ------------------------------------------------------------------ collections
    def list_collections(self) -> list[CollectionResponse]:
        """The tenant's collections."""
        return self._run(p.list_collections())

    def get_collection(self, name: str) -> CollectionResponse:
        """One collection with its document and chunk counts.

        Raises:
            NotFoundError: no such collection.
        """
        return self._run(p.get_collection(name))

    def create_collection(
        self,
        name: str,
        *,
        embedding_model: str | None = None,
        hybrid: bool = True,
        rerank_model: str | None = None,
        min_score: float | None = None,
        late_interaction: bool = False,
        late_model: str | None = None,
        ttl_s: float | None = None,
    ) -> CollectionResponse:
        """Create a collection (its embedding dimension is probed and pinned).

        Raises:
            ConflictError: it exists already.
        """
        return self._run(
            p.create_collection(
                name,
                embedding_model=embedding_model,
                hybrid=hybrid,
                rerank_model=rerank_model,
                min_score=min_score,
                late_interaction=late_interaction,
                late_model=late_model,
                ttl_s=ttl_s,
            )
        )

    def update_collection(self, name: str, *, ttl_s: float | None) -> CollectionResponse:
        """Change the collection's ``ttl_s``: the expiry later uploads without one of their
        own get (``None``: none); documents already stored keep theirs.

        Raises:
            NotFoundError: no such collection.
            InvalidRequestError: ``ttl_s`` not positive or over the server's bound.
        """
        return self._run(p.update_collection(name, ttl_s=ttl_s))

    def reindex_collection(
        self,
        name: str,
        *,
        embedding_model: str | None = None,
        late_interaction: bool | None = None,
        late_model: str | None = None,
        wait: bool = False,
        timeout_s: float | None = None,
    ) -> JobResponse:
        """Rebuild the collection's vectors from its stored chunks with other model fields,
        as a job (``wait_job`` it, or pass ``wait=True``/``timeout_s``: the answer is then the
        job once terminal, or as it is when ``timeout_s`` passed); queries answer from the old
        vectors until it switches.

        Raises:
            ConflictError: a re-index of it is already under way.
            InvalidRequestError: nothing would change, or a model the hub does not serve.
        """
        return self._run(
            p.wait_for_job(
                p.reindex_collection(
                    name,
                    embedding_model=embedding_model,
                    late_interaction=late_interaction,
                    late_model=late_model,
                ),
                wait,
                timeout_s,
            )
        )

    def delete_collection(self, name: str) -> None:
        """Delete a collection with its documents and chunks."""
        self._run(p.delete_collection(name))

    # ------------------------------------------------------------------ documents
    def upload_files(
        self,
        collection: str,
        files: Sequence[FileInput],
        *,
        progress: ProgressCallback | None = None,
        wait: bool = False,
        timeout_s: float | None = None,
        expires_at: datetime | str | None = None,
        ttl_s: float | None = None,
    ) -> IngestAcceptedResponse:
        """Upload files (paths or ``(name, bytes)``): documents, archives, ``.jsonl`` files.

        ``progress`` is called with an :class:`UploadProgress` as the body goes out.
        """
        return self._run(
            p.wait_for_upload(
                p.with_expiry(p.upload_files(collection, p.load_files(files)), expires_at, ttl_s),
                wait,
                timeout_s,
            ),
            progress,
        )

    def upload_documents(
        self,
        collection: str,
        documents: Sequence[Mapping[str, Any]],
        *,
        progress: ProgressCallback | None = None,
        wait: bool = False,
        timeout_s: float | None = None,
        expires_at: datetime | str | None = None,
        ttl_s: float | None = None,
    ) -> IngestAcceptedResponse:
        """Upload records ``{"id", "text", "title", "metadata"}`` as JSON.

        Every upload method takes ``expires_at`` (an aware ``datetime`` or ISO-8601 text
        with an offset) or ``ttl_s`` (seconds from now): its documents expire then (a
        collection's ``ttl_s`` applies when neither is given; README, "Expiry").

        Every upload method takes ``wait=True`` (and ``timeout_s``, at most the server's
        ``SIEVE_API_WAIT_MAX_TIMEOUT_S``): the answer is then an :class:`IngestWaitResponse`
        whose ``job`` is terminal, or still running when ``timeout_s`` passed first
        (``job.finished_at`` is None: follow it with :meth:`wait_job`).
        """
        return self._run(
            p.wait_for_upload(
                p.with_expiry(p.upload_records(collection, documents), expires_at, ttl_s),
                wait,
                timeout_s,
            ),
            progress,
        )

    def upload_jsonl(
        self,
        collection: str,
        lines: bytes,
        *,
        progress: ProgressCallback | None = None,
        wait: bool = False,
        timeout_s: float | None = None,
        expires_at: datetime | str | None = None,
        ttl_s: float | None = None,
    ) -> IngestAcceptedResponse:
        """Upload BEIR-layout JSON lines (``_id``, ``title``, ``text``)."""
        return self._run(
            p.wait_for_upload(
                p.with_expiry(p.upload_jsonl(collection, lines), expires_at, ttl_s),
                wait,
                timeout_s,
            ),
            progress,
        )

    def replace_document(
        self,
        collection: str,
        document_id: str,
        *,
        text: str | None = None,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        file: tuple[str, bytes] | None = None,
        wait: bool = False,
        timeout_s: float | None = None,
        expires_at: datetime | str | None = None,
        ttl_s: float | None = None,
    ) -> IngestAcceptedResponse:
        """Replace one document with new text (and title/metadata) or one new file."""
        return self._run(
            p.wait_for_upload(
                p.with_expiry(
                    p.replace_document(
                        collection,
                        document_id,
                        text=text,
                        title=title,
                        metadata=metadata,
                        file=file,
                    ),
                    expires_at,
                    ttl_s,
                ),
                wait,
                timeout_s,
            )
        )

    def list_documents(
        self,
        collection: str,
        *,
        status: DocStatus | str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> DocumentsPageResponse:
        """A page of documents in upload order, optionally only those in ``status``."""
        return self._run(p.list_documents(collection, status=status, offset=offset, limit=limit))

    def get_document(self, collection: str, document_id: str) -> DocumentResponse:
        """One document's state."""
        return self._run(p.get_document(collection, document_id))

    def delete_document(self, collection: str, document_id: str) -> DocumentDeletedResponse:
        """Delete a document: every chunk of it leaves the store."""
        return self._run(p.delete_document(collection, document_id))

    def get_document_image(
        self, collection: str, document_id: str, *, page: int = 1
    ) -> DocumentImage:
        """An image document's page as uploaded, or a PDF page rendered as PNG.

        Raises:
            NotFoundError: no such document or page, or ``no_image`` (a text document).
        """
        return self._run(p.get_document_image(collection, document_id, page=page))

    # ------------------------------------------------------------------ jobs
    def get_job(self, job_id: str) -> JobResponse:
        """A job's state, counts and per-document errors."""
        return self._run(p.get_job(job_id))

    def cancel_job(self, job_id: str) -> JobResponse:
        """Cancel a job; documents already written stay."""
        return self._run(p.cancel_job(job_id))

    def wait_job(
        self,
        job_id: str,
        *,
        timeout_s: float = 600.0,
        poll_s: float = 0.5,
        on_update: Callable[[JobResponse], None] | None = None,
    ) -> JobResponse:
        """Poll a job until no document of it is queued or running; its final state.

        Raises:
            JobWaitTimeout: still running after ``timeout_s`` (``.job`` is the last state).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.get_job(job_id)
            if on_update is not None:
                on_update(job)
            if job.finished:
                return job
            if time.monotonic() >= deadline:
                raise _wait_timeout(job, timeout_s)
            self._sleep(poll_s)

    # ------------------------------------------------------------------ backups
    def snapshot_collection(self, name: str) -> SnapshotResponse:
        """Start a snapshot (backup) of a collection; poll it with ``get_snapshot``."""
        return self._run(p.snapshot_collection(name))

    def get_snapshot(self, snapshot_id: str) -> SnapshotResponse:
        """A snapshot job's state."""
        return self._run(p.get_snapshot(snapshot_id))

    def wait_snapshot(
        self, snapshot_id: str, *, timeout_s: float = 3600.0, poll_s: float = 0.5
    ) -> SnapshotResponse:
        """Poll a snapshot until it completed.

        Raises:
            SieveClientError: it failed (``code`` says why), or ran past ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            snap = self.get_snapshot(snapshot_id)
            if snap.state != "running":
                return _snapshot_done(snap)
            if time.monotonic() >= deadline:
                raise SieveClientError(f"snapshot {snapshot_id} still running", "timeout")
            self._sleep(poll_s)

    def download_snapshot(self, snapshot_id: str, target: str | os.PathLike[str]) -> int:
        """Stream a completed snapshot's bundle to ``target``; returns its bytes."""
        path = p.snapshot_file_path(snapshot_id)
        try:
            with self._http.stream("GET", path, timeout=self._upload_timeout) as resp:
                if not resp.is_success:
                    resp.read()
                    raise error_from_response(resp)
                return _save(Path(target), resp.iter_bytes())
        except httpx.TransportError as exc:
            raise error_from_transport(exc, self.base_url) from exc

    def backup(
        self, collection: str, target: str | os.PathLike[str], *, timeout_s: float = 3600.0
    ) -> SnapshotResponse:
        """Snapshot a collection, wait for it and download its bundle to ``target``."""
        snap = self.wait_snapshot(self.snapshot_collection(collection).id, timeout_s=timeout_s)
        self.download_snapshot(snap.id, target)
        return snap

    def restore(
        self, source: str | os.PathLike[str], *, name: str | None = None, reindex: bool = False
    ) -> RestoreResponse:
        """Create a collection from a bundle file (named ``name``, else as in the bundle)."""
        call = p.restore_call(name, reindex=reindex)
        try:
            with Path(source).open("rb") as handle:
                resp = self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    content=_pieces(handle),
                    headers=call.headers,
                    timeout=self._timeout_for(call),
                )
        except httpx.TransportError as exc:
            raise error_from_transport(exc, self.base_url) from exc
        if not resp.is_success:
            raise error_from_response(resp)
        return self._finish(call, resp)

    # ------------------------------------------------------------------ query and models
    def query(
        self,
        collection: str | Sequence[str],
        text: str,
        *,
        top_k: int | None = None,
        top_n: int | None = None,
        min_score: float | None = None,
        filter: QueryFilter | Mapping[str, Any] | None = None,
        mode: QueryMode | str = QueryMode.HYBRID,
        rerank: bool = True,
        rerank_model: str | None = None,
        final: str | None = None,
        on_rerank_error: str | None = None,
        rerank_depth: int | None = None,
        autocut: int | None = None,
        late: bool = True,
        late_weight: float | None = None,
        late_recall_weight: float | None = None,
        explain: bool = False,
        explain_documents: Sequence[str] | None = None,
    ) -> QueryResponse:
        """Query one collection (a name) or several sharing an embedding model (a list)."""
        return self._run(
            p.query(
                collection,
                text,
                top_k=top_k,
                top_n=top_n,
                min_score=min_score,
                filter=filter,
                mode=mode,
                rerank=rerank,
                rerank_model=rerank_model,
                final=final,
                on_rerank_error=on_rerank_error,
                rerank_depth=rerank_depth,
                autocut=autocut,
                late=late,
                late_weight=late_weight,
                late_recall_weight=late_recall_weight,
                explain=explain,
                explain_documents=explain_documents,
            )
        )

    def query_raw(
        self, collection: str | Sequence[str], body: Mapping[str, Any], *, log: bool = True
    ) -> dict[str, Any]:
        """Query with a ready request body; the answer's JSON as the server sent it
        (``log=False``: not into the collections' query logs)."""
        return self._run(p.query_raw(collection, body, log=log))

    def get_evaluation(self, collection: str) -> EvaluationReport:
        """The collection's last stored ``sieve eval`` report.

        Raises:
            NotFoundError: ``evaluation_not_found`` when none was stored.
        """
        return self._run(p.get_evaluation(collection))

    def put_evaluation(self, collection: str, report: EvaluationReport) -> EvaluationReport:
        """Store an evaluation report for the collection (replacing the last one)."""
        return self._run(p.put_evaluation(collection, report))

    def get_policy(self, collection: str) -> PolicyResponse:
        """The collection's stored query policy (``policy`` None: the server's defaults)."""
        return self._run(p.get_policy(collection))

    def put_policy(
        self, collection: str, policy: QueryPolicy | Mapping[str, Any]
    ) -> PolicyResponse:
        """Store a query policy; queries use it when they do not say otherwise."""
        return self._run(p.put_policy(collection, policy))

    def clear_policy(self, collection: str) -> PolicyResponse:
        """Drop the stored policy: queries use the server's defaults again."""
        return self._run(p.clear_policy(collection))

    def add_feedback(
        self, collection: str, query: str, document_id: str, *, relevant: bool
    ) -> FeedbackResponse:
        """Record whether ``document_id`` was relevant to ``query`` (``count``: judgments held)."""
        return self._run(p.add_feedback(collection, query, document_id, relevant=relevant))

    def list_feedback(
        self, collection: str, *, cursor: str | None = None, limit: int = 1000
    ) -> FeedbackResponse:
        """A page of the collection's judgments, least recently written first (pass
        ``next_cursor`` back as ``cursor`` for the next one)."""
        return self._run(p.list_feedback(collection, cursor=cursor, limit=limit))

    def get_query_log(self, collection: str) -> QueryLogResponse:
        """The collection's query log config (``config`` None: off) and entries held."""
        return self._run(p.get_query_log(collection))

    def enable_query_log(
        self,
        collection: str,
        *,
        sample_rate: float = 1.0,
        max_entries: int | None = None,
        ttl_s: int | None = None,
    ) -> QueryLogResponse:
        """Log ``sample_rate`` of the collection's queries (``sieve tune --from-query-log``)."""
        call = p.enable_query_log(
            collection, sample_rate=sample_rate, max_entries=max_entries, ttl_s=ttl_s
        )
        return self._run(call)

    def disable_query_log(self, collection: str) -> QueryLogResponse:
        """Turn the collection's query log off and drop its entries."""
        return self._run(p.disable_query_log(collection))

    def list_query_log(
        self, collection: str, *, offset: int = 0, limit: int = 100
    ) -> QueryLogEntriesResponse:
        """A page of logged queries, most recently seen first (``next_offset``: the next page)."""
        return self._run(p.list_query_log(collection, offset=offset, limit=limit))

    def create_webhook(
        self,
        collection: str,
        url: str,
        *,
        events: Sequence[WebhookEvent | str] | None = None,
        description: str = "",
    ) -> WebhookCreatedResponse:
        """Subscribe ``url`` to the collection's events; the answer's ``secret`` is shown once.

        Raises:
            InvalidRequestError: the server's SSRF guard refused the URL.
        """
        return self._run(p.create_webhook(collection, url, events=events, description=description))

    def list_webhooks(self, collection: str) -> list[WebhookResponse]:
        """The collection's webhook subscriptions (no secrets)."""
        return self._run(p.list_webhooks(collection))

    def delete_webhook(self, collection: str, webhook_id: str) -> None:
        """Remove a subscription; its queued deliveries are dropped."""
        self._run(p.delete_webhook(collection, webhook_id))

    def list_webhook_deliveries(
        self, collection: str, webhook_id: str, *, offset: int = 0, limit: int = 50
    ) -> WebhookDeliveriesResponse:
        """A page of a subscription's delivery attempts, newest first."""
        return self._run(
            p.list_webhook_deliveries(collection, webhook_id, offset=offset, limit=limit)
        )

    def list_models(self) -> list[ModelInfo]:
        """The hub's models, to pick an embedding or rerank model."""
        return self._run(p.list_models())

    def health(self) -> dict[str, Any]:
        """Liveness (``/healthz``)."""
        return self._run(p.health())

    def ready(self) -> dict[str, Any]:
        """Readiness (``/readyz``): Redis, store and hub checks.

        Raises:
            ServiceUnavailableError: not ready.
        """
        return self._run(p.ready())


class AsyncSieveClient(_Base):
    """The asynchronous twin of :class:`SieveClient`: the same methods, awaited."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        upload_timeout: float | httpx.Timeout = UPLOAD_TIMEOUT,
        max_retries: int = 3,
        max_retry_delay_s: float = _MAX_RETRY_DELAY_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            timeout=timeout,
            upload_timeout=upload_timeout,
            max_retries=max_retries,
            max_retry_delay_s=max_retry_delay_s,
            rng=rng,
        )
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=self._headers,
            transport=transport or httpx.AsyncHTTPTransport(retries=1),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _run(self, call: p.Call[T], progress: ProgressCallback | None = None) -> T:
        attempt = 0
        while True:
            content = _aiter(call, progress) if call.body is not None else None
            try:
                resp = await self._http.request(
                    call.method,
                    call.path,
                    json=call.json,
                    params=call.params,
                    content=content,
                    headers=call.headers,
                    timeout=self._timeout_for(call),
                )
            except httpx.TransportError as exc:
                raise error_from_transport(exc, self.base_url) from exc
            if resp.is_success:
                return self._finish(call, resp)
            delay = self._retry_in(resp, attempt)
            if delay is None:
                raise error_from_response(resp)
            await self._sleep(delay)
            attempt += 1

    # ------------------------------------------------------------------ collections
    async def list_collections(self) -> list[CollectionResponse]:
        """The tenant's collections."""
        return await self._run(p.list_collections())

    async def get_collection(self, name: str) -> CollectionResponse:
        """One collection with its document and chunk counts."""
        return await self._run(p.get_collection(name))

    async def create_collection(
        self,
        name: str,
        *,
        embedding_model: str | None = None,
        hybrid: bool = True,
        rerank_model: str | None = None,
        min_score: float | None = None,
        late_interaction: bool = False,
        late_model: str | None = None,
        ttl_s: float | None = None,
    ) -> CollectionResponse:
        """Create a collection (its embedding dimension is probed and pinned)."""
        return await self._run(
            p.create_collection(
                name,
                embedding_model=embedding_model,
                hybrid=hybrid,
                rerank_model=rerank_model,
                min_score=min_score,
                late_interaction=late_interaction,
                late_model=late_model,
                ttl_s=ttl_s,
            )
        )

    async def update_collection(self, name: str, *, ttl_s: float | None) -> CollectionResponse:
        """Change the collection's ``ttl_s`` (``None``: none); stored documents keep theirs."""
        return await self._run(p.update_collection(name, ttl_s=ttl_s))

    async def reindex_collection(
        self,
        name: str,
        *,
        embedding_model: str | None = None,
        late_interaction: bool | None = None,
        late_model: str | None = None,
        wait: bool = False,
        timeout_s: float | None = None,
    ) -> JobResponse:
        """Rebuild the collection's vectors with other model fields, as a job."""
        return await self._run(
            p.wait_for_job(
                p.reindex_collection(
                    name,
                    embedding_model=embedding_model,
                    late_interaction=late_interaction,
                    late_model=late_model,
                ),
                wait,
                timeout_s,
            )
        )

    async def delete_collection(self, name: str) -> None:
        """Delete a collection with its documents and chunks."""
        await self._run(p.delete_collection(name))

    # ------------------------------------------------------------------ documents
    async def upload_files(
        self,
        collection: str,
        files: Sequence[FileInput],
        *,
        progress: ProgressCallback | None = None,
        wait: bool = False,
        timeout_s: float | None = None,
        expires_at: datetime | str | None = None,
        ttl_s: float | None = None,
    ) -> IngestAcceptedResponse:
        """Upload files (paths or ``(name, bytes)``): documents, archives, ``.jsonl`` files."""
        return await self._run(
            p.wait_for_upload(
                p.with_expiry(p.upload_files(collection, p.load_files(files)), expires_at, ttl_s),
                wait,
                timeout_s,
            ),
            progress,
        )

    async def upload_documents(
        self,
        collection: str,
        documents: Sequence[Mapping[str, Any]],
        *,
        progress: ProgressCallback | None = None,
        wait: bool = False,
        timeout_s: float | None = None,
        expires_at: datetime | str | None = None,
        ttl_s: float | None = None,
    ) -> IngestAcceptedResponse:
        """Upload records ``{"id", "text", "title", "metadata"}`` as JSON."""
        return await self._run(
            p.wait_for_upload(
                p.with_expiry(p.upload_records(collection, documents), expires_at, ttl_s),
                wait,
                timeout_s,
            ),
            progress,
        )

    async def upload_jsonl(
        self,
        collection: str,
        lines: bytes,
        *,
        progress: ProgressCallback | None = None,
        wait: bool = False,
        timeout_s: float | None = None,
        expires_at: datetime | str | None = None,
        ttl_s: float | None = None,
    ) -> IngestAcceptedResponse:
        """Upload BEIR-layout JSON lines (``_id``, ``title``, ``text``)."""
        return await self._run(
            p.wait_for_upload(
                p.with_expiry(p.upload_jsonl(collection, lines), expires_at, ttl_s),
                wait,
                timeout_s,
            ),
            progress,
        )

    async def replace_document(
        self,
        collection: str,
        document_id: str,
        *,
        text: str | None = None,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        file: tuple[str, bytes] | None = None,
        wait: bool = False,
        timeout_s: float | None = None,
        expires_at: datetime | str | None = None,
        ttl_s: float | None = None,
    ) -> IngestAcceptedResponse:
        """Replace one document with new text (and title/metadata) or one new file."""
        return await self._run(
            p.wait_for_upload(
                p.with_expiry(
                    p.replace_document(
                        collection,
                        document_id,
                        text=text,
                        title=title,
                        metadata=metadata,
                        file=file,
                    ),
                    expires_at,
                    ttl_s,
                ),
                wait,
                timeout_s,
            )
        )

    async def list_documents(
        self,
        collection: str,
        *,
        status: DocStatus | str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> DocumentsPageResponse:
        """A page of documents in upload order, optionally only those in ``status``."""
        return await self._run(
            p.list_documents(collection, status=status, offset=offset, limit=limit)
        )

    async def get_document(self, collection: str, document_id: str) -> DocumentResponse:
        """One document's state."""
        return await self._run(p.get_document(collection, document_id))

    async def delete_document(self, collection: str, document_id: str) -> DocumentDeletedResponse:
        """Delete a document: every chunk of it leaves the store."""
        return await self._run(p.delete_document(collection, document_id))

    async def get_document_image(
        self, collection: str, document_id: str, *, page: int = 1
    ) -> DocumentImage:
        """An image document's page as uploaded, or a PDF page rendered as PNG."""
        return await self._run(p.get_document_image(collection, document_id, page=page))

    # ------------------------------------------------------------------ jobs
    async def get_job(self, job_id: str) -> JobResponse:
        """A job's state, counts and per-document errors."""
        return await self._run(p.get_job(job_id))

    async def cancel_job(self, job_id: str) -> JobResponse:
        """Cancel a job; documents already written stay."""
        return await self._run(p.cancel_job(job_id))

    async def wait_job(
        self,
        job_id: str,
        *,
        timeout_s: float = 600.0,
        poll_s: float = 0.5,
        on_update: Callable[[JobResponse], None] | None = None,
    ) -> JobResponse:
        """Poll a job until no document of it is queued or running; its final state."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = await self.get_job(job_id)
            if on_update is not None:
                on_update(job)
            if job.finished:
                return job
            if time.monotonic() >= deadline:
                raise _wait_timeout(job, timeout_s)
            await self._sleep(poll_s)

    # ------------------------------------------------------------------ backups
    async def snapshot_collection(self, name: str) -> SnapshotResponse:
        """Start a snapshot (backup) of a collection; poll it with ``get_snapshot``."""
        return await self._run(p.snapshot_collection(name))

    async def get_snapshot(self, snapshot_id: str) -> SnapshotResponse:
        """A snapshot job's state."""
        return await self._run(p.get_snapshot(snapshot_id))

    async def wait_snapshot(
        self, snapshot_id: str, *, timeout_s: float = 3600.0, poll_s: float = 0.5
    ) -> SnapshotResponse:
        """Poll a snapshot until it completed (see ``SieveClient.wait_snapshot``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            snap = await self.get_snapshot(snapshot_id)
            if snap.state != "running":
                return _snapshot_done(snap)
            if time.monotonic() >= deadline:
                raise SieveClientError(f"snapshot {snapshot_id} still running", "timeout")
            await self._sleep(poll_s)

    async def download_snapshot(self, snapshot_id: str, target: str | os.PathLike[str]) -> int:
        """Stream a completed snapshot's bundle to ``target``; returns its bytes."""
        path = p.snapshot_file_path(snapshot_id)
        try:
            async with self._http.stream("GET", path, timeout=self._upload_timeout) as resp:
                if not resp.is_success:
                    await resp.aread()
                    raise error_from_response(resp)
                size = 0
                with Path(target).open("wb") as out:  # noqa: ASYNC230 - local disk, small writes
                    async for piece in resp.aiter_bytes():
                        out.write(piece)
                        size += len(piece)
                return size
        except httpx.TransportError as exc:
            raise error_from_transport(exc, self.base_url) from exc

    async def backup(
        self, collection: str, target: str | os.PathLike[str], *, timeout_s: float = 3600.0
    ) -> SnapshotResponse:
        """Snapshot a collection, wait for it and download its bundle to ``target``."""
        started = await self.snapshot_collection(collection)
        snap = await self.wait_snapshot(started.id, timeout_s=timeout_s)
        await self.download_snapshot(snap.id, target)
        return snap

    async def restore(
        self, source: str | os.PathLike[str], *, name: str | None = None, reindex: bool = False
    ) -> RestoreResponse:
        """Create a collection from a bundle file (named ``name``, else as in the bundle)."""
        call = p.restore_call(name, reindex=reindex)
        try:
            with Path(source).open("rb") as handle:  # noqa: ASYNC230 - read in pieces
                resp = await self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    content=_apieces(handle),
                    headers=call.headers,
                    timeout=self._timeout_for(call),
                )
        except httpx.TransportError as exc:
            raise error_from_transport(exc, self.base_url) from exc
        if not resp.is_success:
            raise error_from_response(resp)
        return self._finish(call, resp)

    # ------------------------------------------------------------------ query and models
    async def query(
        self,
        collection: str | Sequence[str],
        text: str,
        *,
        top_k: int | None = None,
        top_n: int | None = None,
        min_score: float | None = None,
        filter: QueryFilter | Mapping[str, Any] | None = None,
        mode: QueryMode | str = QueryMode.HYBRID,
        rerank: bool = True,
        rerank_model: str | None = None,
        final: str | None = None,
        on_rerank_error: str | None = None,
        rerank_depth: int | None = None,
        autocut: int | None = None,
        late: bool = True,
        late_weight: float | None = None,
        late_recall_weight: float | None = None,
        explain: bool = False,
        explain_documents: Sequence[str] | None = None,
    ) -> QueryResponse:
        """Query one collection (a name) or several sharing an embedding model (a list)."""
        return await self._run(
            p.query(
                collection,
                text,
                top_k=top_k,
                top_n=top_n,
                min_score=min_score,
                filter=filter,
                mode=mode,
                rerank=rerank,
                rerank_model=rerank_model,
                final=final,
                on_rerank_error=on_rerank_error,
                rerank_depth=rerank_depth,
                autocut=autocut,
                late=late,
                late_weight=late_weight,
                late_recall_weight=late_recall_weight,
                explain=explain,
                explain_documents=explain_documents,
            )
        )

    async def query_raw(
        self, collection: str | Sequence[str], body: Mapping[str, Any], *, log: bool = True
    ) -> dict[str, Any]:
        """Query with a ready request body; the answer's JSON as the server sent it
        (``log=False``: not into the collections' query logs)."""
        return await self._run(p.query_raw(collection, body, log=log))

    async def get_evaluation(self, collection: str) -> EvaluationReport:
        """The collection's last stored ``sieve eval`` report."""
        return await self._run(p.get_evaluation(collection))

    async def put_evaluation(self, collection: str, report: EvaluationReport) -> EvaluationReport:
        """Store an evaluation report for the collection (replacing the last one)."""
        return await self._run(p.put_evaluation(collection, report))

    async def get_policy(self, collection: str) -> PolicyResponse:
        """The collection's stored query policy (``policy`` None: the server's defaults)."""
        return await self._run(p.get_policy(collection))

    async def put_policy(
        self, collection: str, policy: QueryPolicy | Mapping[str, Any]
    ) -> PolicyResponse:
        """Store a query policy; queries use it when they do not say otherwise."""
        return await self._run(p.put_policy(collection, policy))

    async def clear_policy(self, collection: str) -> PolicyResponse:
        """Drop the stored policy: queries use the server's defaults again."""
        return await self._run(p.clear_policy(collection))

    async def add_feedback(
        self, collection: str, query: str, document_id: str, *, relevant: bool
    ) -> FeedbackResponse:
        """Record whether ``document_id`` was relevant to ``query`` (``count``: judgments held)."""
        return await self._run(p.add_feedback(collection, query, document_id, relevant=relevant))

    async def list_feedback(
        self, collection: str, *, cursor: str | None = None, limit: int = 1000
    ) -> FeedbackResponse:
        """A page of the collection's judgments, least recently written first (pass
        ``next_cursor`` back as ``cursor`` for the next one)."""
        return await self._run(p.list_feedback(collection, cursor=cursor, limit=limit))

    async def get_query_log(self, collection: str) -> QueryLogResponse:
        """The collection's query log config (``config`` None: off) and entries held."""
        return await self._run(p.get_query_log(collection))

    async def enable_query_log(
        self,
        collection: str,
        *,
        sample_rate: float = 1.0,
        max_entries: int | None = None,
        ttl_s: int | None = None,
    ) -> QueryLogResponse:
        """Log ``sample_rate`` of the collection's queries (``sieve tune --from-query-log``)."""
        call = p.enable_query_log(
            collection, sample_rate=sample_rate, max_entries=max_entries, ttl_s=ttl_s
        )
        return await self._run(call)

    async def disable_query_log(self, collection: str) -> QueryLogResponse:
        """Turn the collection's query log off and drop its entries."""
        return await self._run(p.disable_query_log(collection))

    async def list_query_log(
        self, collection: str, *, offset: int = 0, limit: int = 100
    ) -> QueryLogEntriesResponse:
        """A page of logged queries, most recently seen first (``next_offset``: the next page)."""
        return await self._run(p.list_query_log(collection, offset=offset, limit=limit))

    async def create_webhook(
        self,
        collection: str,
        url: str,
        *,
        events: Sequence[WebhookEvent | str] | None = None,
        description: str = "",
    ) -> WebhookCreatedResponse:
        """Subscribe ``url`` to the collection's events; the answer's ``secret`` is shown once.

        Raises:
            InvalidRequestError: the server's SSRF guard refused the URL.
        """
        return await self._run(
            p.create_webhook(collection, url, events=events, description=description)
        )

    async def list_webhooks(self, collection: str) -> list[WebhookResponse]:
        """The collection's webhook subscriptions (no secrets)."""
        return await self._run(p.list_webhooks(collection))

    async def delete_webhook(self, collection: str, webhook_id: str) -> None:
        """Remove a subscription; its queued deliveries are dropped."""
        await self._run(p.delete_webhook(collection, webhook_id))

    async def list_webhook_deliveries(
        self, collection: str, webhook_id: str, *, offset: int = 0, limit: int = 50
    ) -> WebhookDeliveriesResponse:
        """A page of a subscription's delivery attempts, newest first."""
        return await self._run(
            p.list_webhook_deliveries(collection, webhook_id, offset=offset, limit=limit)
        )

    async def list_models(self) -> list[ModelInfo]:
        """The hub's models, to pick an embedding or rerank model."""
        return await self._run(p.list_models())

    async def health(self) -> dict[str, Any]:
        """Liveness (``/healthz``)."""
        return await self._run(p.health())

    async def ready(self) -> dict[str, Any]:
        """Readiness (``/readyz``): Redis, store and hub checks."""
        return await self._run(p.ready())


async def _aiter(call: p.Call[Any], progress: ProgressCallback | None) -> AsyncIterator[bytes]:
    assert call.body is not None
    for piece in p.upload_chunks(call.body, call.files, progress):
        yield piece


def _wait_timeout(job: JobResponse, timeout_s: float) -> SieveClientError:
    return JobWaitTimeout(
        f"job {job.id} still {job.state} after {timeout_s:g}s ({job.counts})", job
    )


_PIECE = 1 << 20


def _pieces(handle: IO[bytes]) -> Iterator[bytes]:
    while piece := handle.read(_PIECE):
        yield piece


async def _apieces(handle: IO[bytes]) -> AsyncIterator[bytes]:
    while piece := handle.read(_PIECE):
        yield piece


def _save(target: Path, pieces: Iterator[bytes]) -> int:
    size = 0
    with target.open("wb") as out:
        for piece in pieces:
            out.write(piece)
            size += len(piece)
    return size


def _snapshot_done(snap: SnapshotResponse) -> SnapshotResponse:
    if snap.state == "failed":
        error = snap.error or {}
        raise SieveClientError(
            f"snapshot {snap.id} failed: {error.get('message', 'no reason given')}",
            error.get("code", "snapshot_failed"),
        )
    return snap
