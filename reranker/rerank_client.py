"""``HttpReranker``: the /rerank client over httpx — the only module here that knows httpx.

Thin I/O around the pure parts: budgeting (budget.py, images.py), splitting (splitting.py),
the peer's dialect (dialects.py), retry decisions (core/retry.py) and the breaker (breaker.py).
Every httpx exception and every peer error is mapped to a core error in ``_post``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from core.errors import InvalidInput, SieveError, UpstreamRejected, UpstreamUnavailable
from core.retry import RETRYABLE_STATUSES, parse_retry_after, retry_delay
from reranker.breaker import CircuitBreaker
from reranker.budget import (
    PairBudget,
    TokenCounter,
    estimate_tokens,
    fit_document,
    fit_query,
    fit_query_strictly,
)
from reranker.codes import RerankErrorCode
from reranker.dialects import (
    DIALECTS,
    MalformedResponse,
    RerankDialect,
    RerankScore,
    normalize_scores,
    parse_error_body,
)
from reranker.documents import PreparedDocument, RerankDocument
from reranker.images import PreparedImage, prepare_image
from reranker.splitting import one_image_document_per_request, split_requests

__all__ = ["HttpReranker", "RerankResult"]

logger = logging.getLogger(__name__)

_TRACE_HEADERS = ("x-trace-id", "x-request-id")
# Statuses on which a batch of several image documents is retried one image document per
# request (model-api.md: "on a 400 for the mixed list"); 413 is the same problem, in bytes.
_IMAGE_FALLBACK_STATUSES = frozenset({400, 413})


@dataclass(frozen=True, slots=True)
class RerankResult:
    """Scores in [0, 1] for every document sent, in the caller's order.

    ``scores[i]`` is None when the peer returned no score for document ``i`` (a peer that
    cut to its own top_n). ``query_truncated``: the query was cut to its head to fit the
    pair budget (its share of the model's context).
    """

    model: str
    scores: tuple[float | None, ...]
    requests: int = 0
    texts_truncated: int = 0
    images_dropped: int = 0
    usage_tokens: int | None = None
    query_truncated: bool = False

    def order(self) -> list[int]:
        """Document positions by score, highest first; unscored last; ties keep input order."""
        return sorted(
            range(len(self.scores)),
            key=lambda i: (self.scores[i] is None, -(self.scores[i] or 0.0), i),
        )


@dataclass(frozen=True, slots=True)
class _Attempt:
    """A failed attempt: the core error to raise and whether another attempt may help."""

    error: UpstreamUnavailable | UpstreamRejected
    retryable: bool


def _trace_id(response: httpx.Response) -> str | None:
    for header in _TRACE_HEADERS:
        if value := response.headers.get(header):
            return str(value)
    return None


def _status_error(response: httpx.Response) -> _Attempt:
    """Map a non-2xx answer to a core error: the one place statuses become errors."""
    status = response.status_code
    try:
        body: object = response.json()
    except ValueError:
        body = response.text
    peer = parse_error_body(body)
    detail = peer.message[:300] if peer else response.reason_phrase
    message = f"rerank model hub answered {status}: {detail}"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    logger.warning(
        "rerank upstream error",
        extra={
            "status": status,
            "trace_id": _trace_id(response),
            "peer_message": detail,
            "peer_code": peer.code if peer else None,
            "retry_after": retry_after,
        },
    )
    if status == 429:
        code = RerankErrorCode.RATE_LIMITED
        return _Attempt(UpstreamUnavailable(message, code=code, retry_after=retry_after), True)
    if status >= 500:
        error = UpstreamUnavailable(
            message, code=RerankErrorCode.UNAVAILABLE, retry_after=retry_after
        )
        return _Attempt(error, status in RETRYABLE_STATUSES)
    if 400 <= status < 500:
        return _Attempt(
            UpstreamRejected(message, code=RerankErrorCode.REJECTED, status=status), False
        )
    # 1xx/3xx: redirects are not followed on purpose (a POST body must not wander off).
    return _Attempt(UpstreamUnavailable(message, code=RerankErrorCode.BAD_RESPONSE), False)


class HttpReranker:
    """Async /rerank client: budgets, splits, sends concurrently, retries, and merges by score.

    ``client`` is owned by the caller (opened and closed in the composition root); its
    ``base_url`` is the hub's (e.g. ``https://…/v1``) and ``endpoint`` is joined to it.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        model: str,
        endpoint: str = "rerank",
        api_key: SecretStr | None = None,
        timeout_s: float = 10.0,
        total_timeout_s: float | None = None,
        max_retries: int = 3,
        backoff_base_s: float = 0.25,
        backoff_max_s: float = 4.0,
        max_retry_after_s: float = 10.0,
        max_documents_per_request: int = 64,
        max_images_per_request: int = 8,
        max_concurrency: int = 4,
        budget: PairBudget | None = None,
        tokenizer: TokenCounter | None = None,
        dialect: RerankDialect = DIALECTS["ionos"],
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if timeout_s <= 0 or (total_timeout_s is not None and total_timeout_s <= 0):
            raise ValueError("timeouts must be positive")
        if max_retries < 0 or max_concurrency < 1:
            raise ValueError("max_retries must be >= 0 and max_concurrency >= 1")
        if max_documents_per_request < 1 or max_images_per_request < 1:
            raise ValueError("per-request caps must be at least 1")
        self._client = client
        self._model = model
        self._endpoint = endpoint
        self._headers = {"Accept": "application/json"}
        if api_key is not None:
            self._headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
        self._timeout = httpx.Timeout(timeout_s)
        self._total_timeout_s = total_timeout_s
        self._max_retries = max_retries
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._max_retry_after_s = max_retry_after_s
        # Within the peer's own cap too (TEI refuses more than 32 texts by default).
        self._max_documents = dialect.documents_per_request(max_documents_per_request)
        self._max_images = max_images_per_request
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._budget = dialect.budget(budget or PairBudget())
        self._count = tokenizer or estimate_tokens
        self._dialect = dialect
        self._breaker = breaker or CircuitBreaker()
        self._sleep = sleep
        self._rng = rng

    def __repr__(self) -> str:
        # Never show the headers: they hold the bearer token.
        return (
            f"HttpReranker(model={self._model!r}, endpoint={self._endpoint!r}, "
            f"dialect={self._dialect.name!r})"
        )

    @property
    def model(self) -> str:
        """The rerank model id sent in every request."""
        return self._model

    @property
    def dialect(self) -> RerankDialect:
        """The peer's dialect: its request shape and what it supports."""
        return self._dialect

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker guarding this peer (for health reporting)."""
        return self._breaker

    async def rerank(self, query: str, documents: Sequence[RerankDocument]) -> RerankResult:
        """Score every document against ``query``; one request when they fit, else several.

        Raises:
            InvalidInput: the query is empty.
            UpstreamUnavailable: timeout, 429, 5xx, transport failure or an open breaker;
                ``code`` is a :class:`RerankErrorCode`.
            UpstreamRejected: any other 4xx (``status`` carries it).
        """
        if not query.strip():
            raise InvalidInput("the rerank query is empty")
        if not documents:
            return RerankResult(model=self._model, scores=())
        if not self._breaker.allow():
            raise UpstreamUnavailable(
                "rerank circuit breaker is open after repeated failures",
                code=RerankErrorCode.CIRCUIT_OPEN,
                retry_after=self._breaker.retry_in,
            )
        try:
            async with self._deadline():
                result = await self._rerank(query, documents)
        except UpstreamRejected:
            # The peer is up and answering; the request was at fault, not the peer.
            self._breaker.record_success()
            raise
        except UpstreamUnavailable:
            self._breaker.record_failure()
            raise
        except TimeoutError as exc:
            self._breaker.record_failure()
            raise UpstreamUnavailable(
                f"rerank exceeded its total budget of {self._total_timeout_s} s",
                code=RerankErrorCode.TIMEOUT,
            ) from exc
        except BaseException:
            self._breaker.release()
            raise
        self._breaker.record_success()
        return result

    @contextlib.asynccontextmanager
    async def _deadline(self) -> AsyncIterator[None]:
        if self._total_timeout_s is None:
            yield
        else:
            async with asyncio.timeout(self._total_timeout_s):
                yield

    async def _rerank(self, query: str, documents: Sequence[RerankDocument]) -> RerankResult:
        fitted_query, query_tokens = fit_query(query, self._budget, self._count)
        images, undecodable = await self._prepare_images(documents)
        prepared = [
            fit_document(
                doc.text, doc_images, query_tokens=query_tokens, budget=self._budget,
                count=self._count,
            )
            for doc, doc_images in zip(documents, images, strict=True)
        ]  # fmt: skip
        batches = split_requests(
            prepared, max_documents=self._max_documents, max_images=self._max_images
        )
        try:
            scores, requests, tokens = await self._run_batches(
                fitted_query, prepared, batches, True
            )
        except UpstreamRejected:
            # The model's hub refused the pair: the estimate may have under-counted a
            # symbol-dense query. Once more with the query cut by a count that cannot.
            strict = fit_query_strictly(fitted_query, self._budget)
            if self._budget.model_context_tokens is None or strict == fitted_query:
                raise
            fitted_query = strict
            scores, requests, tokens = await self._run_batches(
                fitted_query, prepared, batches, True
            )
        merged: list[float | None] = [None] * len(documents)
        # The sigmoid rule is applied once over all batches, so that every document is on
        # the same scale whichever request carried it.
        for item in normalize_scores(scores):
            merged[item.index] = item.score
        return RerankResult(
            model=self._model,
            scores=tuple(merged),
            requests=requests,
            texts_truncated=sum(doc.text_truncated for doc in prepared),
            images_dropped=undecodable + sum(doc.images_dropped for doc in prepared),
            usage_tokens=tokens,
            query_truncated=fitted_query != query,
        )

    async def _prepare_images(
        self, documents: Sequence[RerankDocument]
    ) -> tuple[list[list[PreparedImage]], int]:
        if not self._dialect.supports_images:
            # A text-only peer: images cannot be sent, so they cost no budget either; they
            # are counted as dropped (RerankResult.images_dropped), the text still scored.
            return [[] for _ in documents], sum(len(doc.images) for doc in documents)
        cap = self._dialect.max_images_per_document
        over = 0
        if cap is not None:
            over = sum(max(0, len(doc.images) - cap) for doc in documents)
            documents = [RerankDocument(doc.text, doc.images[:cap]) for doc in documents]
        if not any(doc.images for doc in documents):
            return [[] for _ in documents], over
        # Decoding and resizing is CPU work: keep it off the event loop.
        prepared, undecodable = await asyncio.to_thread(_prepare_all_images, documents)
        return prepared, undecodable + over

    async def _run_batches(
        self,
        query: str,
        prepared: Sequence[PreparedDocument],
        batches: Sequence[Sequence[int]],
        allow_fallback: bool,
    ) -> tuple[list[RerankScore], int, int | None]:
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._run_batch(query, prepared, batch, allow_fallback))
                    for batch in batches
                ]
        except ExceptionGroup as eg:
            # One failed batch fails the call (the others are cancelled): surface the
            # domain error itself, not the group, so callers can catch it by type.
            for exc in eg.exceptions:
                if isinstance(exc, SieveError):
                    raise exc from exc.__cause__
            raise
        scores: list[RerankScore] = []
        requests = 0
        tokens: int | None = None
        for task in tasks:
            batch_scores, batch_requests, batch_tokens = task.result()
            scores.extend(batch_scores)
            requests += batch_requests
            if batch_tokens is not None:
                tokens = (tokens or 0) + batch_tokens
        return scores, requests, tokens

    async def _run_batch(
        self,
        query: str,
        prepared: Sequence[PreparedDocument],
        batch: Sequence[int],
        allow_fallback: bool,
    ) -> tuple[list[RerankScore], int, int | None]:
        docs = [prepared[i] for i in batch]
        # A peer that cuts its answer to top_n is asked for every document it was sent.
        top_n = None if self._dialect.scores_all_documents else len(docs)
        body = self._dialect.build_request(self._model, query, docs, top_n=top_n)
        try:
            data = await self._post(body)
        except UpstreamRejected as exc:
            image_docs = sum(1 for doc in docs if doc.image_count)
            if not (allow_fallback and exc.status in _IMAGE_FALLBACK_STATUSES and image_docs > 1):
                raise
            logger.warning(
                "rerank peer refused a mixed image batch; retrying one image document per request",
                extra={"status": exc.status, "documents": len(docs), "image_documents": image_docs},
            )
            split = one_image_document_per_request(
                batch, prepared, max_documents=self._max_documents
            )
            scores, requests, tokens = await self._run_batches(query, prepared, split, False)
            return scores, requests + 1, tokens
        try:
            local = self._dialect.parse_response(data, len(docs), normalize=False)
        except MalformedResponse as exc:
            raise UpstreamUnavailable(
                f"rerank model hub sent an unreadable response: {exc}",
                code=RerankErrorCode.BAD_RESPONSE,
            ) from exc
        return [RerankScore(batch[s.index], s.score) for s in local], 1, _usage_tokens(data)

    async def _post(self, body: dict[str, object]) -> object:
        """Send one request with retries; every failure leaves here as a core error."""
        attempt = 0
        while True:
            failure = await self._attempt(body)
            if isinstance(failure, _Success):
                return failure.body
            error = failure.error
            retry_after = error.retry_after if isinstance(error, UpstreamUnavailable) else None
            if not failure.retryable or attempt >= self._max_retries:
                raise error
            delay = retry_delay(
                attempt,
                retry_after=retry_after,
                base_s=self._backoff_base_s,
                max_s=self._backoff_max_s,
                max_retry_after_s=self._max_retry_after_s,
                rng=self._rng,
            )
            if delay is None:
                # Waiting that long would outlast any query: give up now, keep the hint.
                raise error
            logger.info("rerank retry", extra={"attempt": attempt + 1, "delay_s": round(delay, 3)})
            await self._sleep(delay)
            attempt += 1

    async def _attempt(self, body: dict[str, object]) -> _Success | _Attempt:
        try:
            async with self._semaphore:
                response = await self._client.post(
                    self._endpoint, json=body, headers=self._headers, timeout=self._timeout
                )
        except httpx.TimeoutException as exc:
            logger.warning("rerank request timed out", extra={"error": type(exc).__name__})
            error = UpstreamUnavailable(
                f"rerank model hub timed out ({type(exc).__name__})", code=RerankErrorCode.TIMEOUT
            )
            error.__cause__ = exc  # raised later, after the retries: keep the httpx cause
            return _Attempt(error, True)
        except httpx.HTTPError as exc:
            logger.warning("rerank transport error", extra={"error": type(exc).__name__})
            error = UpstreamUnavailable(
                f"rerank model hub unreachable ({type(exc).__name__}: {exc})",
                code=RerankErrorCode.UNAVAILABLE,
            )
            error.__cause__ = exc
            return _Attempt(error, isinstance(exc, httpx.TransportError))
        if not response.is_success:
            return _status_error(response)
        try:
            return _Success(response.json())
        except (json.JSONDecodeError, UnicodeDecodeError):
            error = UpstreamUnavailable(
                "rerank model hub answered 2xx with a body that is not JSON",
                code=RerankErrorCode.BAD_RESPONSE,
            )
            return _Attempt(error, False)


@dataclass(frozen=True, slots=True)
class _Success:
    body: object


def _prepare_all_images(
    documents: Sequence[RerankDocument],
) -> tuple[list[list[PreparedImage]], int]:
    prepared: list[list[PreparedImage]] = []
    dropped = 0
    for position, doc in enumerate(documents):
        images: list[PreparedImage] = []
        for raw in doc.images:
            try:
                images.append(prepare_image(raw))
            except InvalidInput as exc:
                # Not silent: counted in RerankResult.images_dropped and logged; the
                # document is still scored by its text.
                dropped += 1
                logger.warning(
                    "rerank image dropped", extra={"document": position, "reason": exc.message}
                )
        prepared.append(images)
    return prepared, dropped


def _usage_tokens(data: object) -> int | None:
    """The peer's token count for one response (``usage.total_tokens`` or ``prompt_tokens``)."""
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return None
    for key in ("total_tokens", "prompt_tokens"):
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None
