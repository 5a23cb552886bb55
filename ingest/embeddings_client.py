"""The embeddings client: the ``openai`` SDK behind one module, packed, paced and retried.

Requests are packed by token count and item count (IONOS allows 5 requests/s, so one
text per request would be hopeless), paced under the hub's rate limit, and retried per
batch with backoff and jitter honouring ``Retry-After`` — never per document.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import openai
from openai.types import CreateEmbeddingResponse

from core.batching import bounded_batches
from core.errors import InvalidInput, NotFound, UpstreamRejected, UpstreamUnavailable
from core.retry import RETRYABLE_STATUSES, parse_retry_after, retry_delay
from core.types import MultiVector
from retriever.multivector import pack

__all__ = [
    "AsyncEmbeddingsClient",
    "EmbeddingsClient",
    "RatePacer",
    "RetryPolicy",
    "estimate_tokens",
    "pack_batches",
]

log = logging.getLogger("sieve.embeddings")


def estimate_tokens(text: str) -> int:
    """A cheap upper-ish token estimate when no tokenizer is at hand (~3.5 chars/token)."""
    return max(1, (len(text) * 2 + 6) // 7)


def pack_batches(token_counts: Sequence[int], max_tokens: int, max_items: int) -> list[range]:
    """Split items, in order, into runs under ``max_tokens`` and ``max_items`` each.

    An item larger than ``max_tokens`` on its own still gets a batch of one.
    """
    return bounded_batches(token_counts, max_count=max_items, max_total=max_tokens)


@dataclass
class RatePacer:
    """A token bucket: at most ``rate`` requests/s on average, bursts up to ``burst``."""

    rate: float
    burst: float = 1.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _tokens: float = field(init=False)
    _last: float = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._tokens = self.burst
        self._last = self.clock()

    def acquire(self) -> None:
        """Block until a request may be sent."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
            self._tokens -= 1
        if wait > 0:
            self.sleep(wait)


@dataclass(frozen=True)
class RetryPolicy:
    """Per-batch retries by the one rule of :mod:`core.retry`: backoff with jitter, the
    hub's ``Retry-After`` as a floor, and no wait at all for one over ``max_retry_after_s``
    (the retryable error is raised with the hint instead)."""

    max_retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 20.0
    max_retry_after_s: float = 20.0
    rng: Callable[[], float] = random.random

    def delay_or_raise(self, exc: openai.APIError, attempt: int, model: str) -> float:
        """The pause before retry ``attempt + 1``; raises the mapped error when not to retry."""
        error = _map_error(exc, model)
        if isinstance(error, UpstreamRejected | NotFound) or attempt >= self.max_retries:
            raise error from exc
        delay = retry_delay(
            attempt,
            retry_after=error.retry_after,
            base_s=self.backoff_s,
            max_s=self.max_backoff_s,
            max_retry_after_s=self.max_retry_after_s,
            rng=self.rng,
        )
        if delay is None:
            raise error from exc
        log.warning(
            "embedding batch retry",
            extra={"attempt": attempt + 1, "delay_s": round(delay, 2), "code": error.code},
        )
        return delay


# Vectors travel as base64 (the OpenAI convention: little-endian float32 bytes): the SDK
# then builds no Python float per dimension. With floats, its response parsing cost the
# API's event loop ~1.5 ms of CPU per query embedding, against ~0.6 ms now; the hub saves
# the float formatting too. A hub that ignores the field and answers floats still works.
_SINGLE: dict[str, Any] = {"encoding_format": "base64"}
# Late interaction (model-api.md): Jina's flag; base64 is the row-major float32 matrix.
_MULTIVECTOR: dict[str, Any] = {
    "encoding_format": "base64",
    "extra_body": {"return_multivector": True},
}


def _floats(raw: str, model: str) -> np.ndarray:
    """The float32 values of a base64 embedding (a vector, or a row-major matrix)."""
    try:
        data = base64.b64decode(raw, validate=True)
    except ValueError:
        raise UpstreamRejected(
            f"model {model} returned an embedding that is not base64", code="bad_upstream_response"
        ) from None
    if len(data) % 4:
        raise UpstreamRejected(
            f"model {model} returned {len(data)} bytes, not float32 values",
            code="bad_upstream_response",
        )
    return np.frombuffer(data, dtype="<f4")


def _vectors(resp: CreateEmbeddingResponse, expected: int, model: str) -> list[list[float]]:
    data = sorted(resp.data, key=lambda d: d.index)
    if len(data) != expected:
        raise UpstreamRejected(
            f"hub returned {len(data)} embeddings for {expected} inputs",
            code="bad_upstream_response",
        )
    out: list[list[float]] = []
    for item in data:
        raw: object = item.embedding
        if isinstance(raw, str):
            out.append(_floats(raw, model).astype(np.float64).tolist())
        else:
            out.append(list(item.embedding))
    return out


def _token_vectors(
    resp: CreateEmbeddingResponse, expected: int, dimension: int | None, model: str
) -> list[MultiVector]:
    """The token vectors of each input, packed; a float or base64 answer both work."""
    data = sorted(resp.data, key=lambda d: d.index)
    if len(data) != expected:
        raise UpstreamRejected(
            f"hub returned {len(data)} multivectors for {expected} inputs",
            code="bad_upstream_response",
        )
    out: list[MultiVector] = []
    for item in data:
        raw: object = item.embedding
        if isinstance(raw, str):
            flat = _floats(raw, model)
            # Sieve's hub says the shape; a peer that does not is read by the pinned size.
            shape = (item.model_extra or {}).get("shape")
            width = int(shape[1]) if isinstance(shape, list) and len(shape) == 2 else dimension
            if not width or flat.size % width:
                raise UpstreamRejected(
                    f"model {model} returned {flat.size} floats, not rows of {width}",
                    code="bad_upstream_response",
                )
            matrix = flat.reshape(-1, width)
        else:
            matrix = np.asarray(raw, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] == 0:
            raise UpstreamRejected(
                f"model {model} did not return token vectors (shape {matrix.shape})",
                code="bad_upstream_response",
            )
        if dimension is not None and matrix.shape[1] != dimension:
            raise InvalidInput(
                f"model {model} returned {matrix.shape[1]}-d token vectors; "
                f"the collection is pinned to {dimension}-d",
                code="dimension_mismatch",
            )
        out.append(pack(matrix))
    return out


def _check_dimension(vectors: list[list[float]], dimension: int | None, model: str) -> None:
    for vec in vectors:
        if dimension is not None and len(vec) != dimension:
            raise InvalidInput(
                f"model {model} returned {len(vec)}-d vectors; "
                f"the collection is pinned to {dimension}-d",
                code="dimension_mismatch",
            )


class EmbeddingsClient:
    """Embed texts through ``/v1/embeddings`` of any OpenAI-compatible hub (sync)."""

    def __init__(
        self,
        client: openai.OpenAI,
        model: str,
        *,
        max_batch_tokens: int = 8192,
        max_batch_items: int = 64,
        pacer: RatePacer | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client.with_options(max_retries=0)
        self.model = model
        self._max_tokens = max_batch_tokens
        self._max_items = max_batch_items
        self._pacer = pacer
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self.requests = 0
        self.prompt_tokens = 0

    def for_model(self, model: str) -> EmbeddingsClient:
        """The same client (connection, pacing, retries) for another model."""
        clone = copy.copy(self)
        clone.model = model
        return clone

    def embed(
        self,
        texts: Sequence[str],
        *,
        token_counts: Sequence[int] | None = None,
        dimension: int | None = None,
    ) -> list[list[float]]:
        """Return one vector per text, in order.

        Raises:
            InvalidInput: a vector's size differs from ``dimension``.
            UpstreamUnavailable: the hub kept failing (timeouts, 429, 5xx) past the retries.
            UpstreamRejected: the hub refused the request (4xx).
        """
        counts = token_counts or [estimate_tokens(t) for t in texts]
        out: list[list[float]] = []
        for batch in pack_batches(counts, self._max_tokens, self._max_items):
            chunk = [texts[i] for i in batch]
            vectors = _vectors(self._create(chunk, **_SINGLE), len(chunk), self.model)
            _check_dimension(vectors, dimension, self.model)
            out.extend(vectors)
        return out

    def embed_tokens(
        self,
        texts: Sequence[str],
        *,
        token_counts: Sequence[int] | None = None,
        dimension: int | None = None,
    ) -> list[MultiVector]:
        """Return each text's token vectors (late interaction), in order; packed and
        retried like ``embed``.

        Raises:
            InvalidInput: a token vector's size differs from ``dimension``.
            UpstreamUnavailable: the hub kept failing (timeouts, 429, 5xx) past the retries.
            UpstreamRejected: the hub refused the request (4xx) or answered no token vectors.
        """
        counts = token_counts or [estimate_tokens(t) for t in texts]
        out: list[MultiVector] = []
        for batch in pack_batches(counts, self._max_tokens, self._max_items):
            chunk = [texts[i] for i in batch]
            resp = self._create(chunk, **_MULTIVECTOR)
            out.extend(_token_vectors(resp, len(chunk), dimension, self.model))
        return out

    def _create(self, texts: list[str], **options: Any) -> CreateEmbeddingResponse:
        """One request, paced, retried with backoff (``Retry-After`` first)."""
        attempt = 0
        while True:
            if self._pacer is not None:
                self._pacer.acquire()
            try:
                resp = self._client.embeddings.create(model=self.model, input=texts, **options)
            except openai.APIError as exc:
                self._sleep(self._retry.delay_or_raise(exc, attempt, self.model))
                attempt += 1
                continue
            self.requests += 1
            if resp.usage is not None:
                self.prompt_tokens += resp.usage.prompt_tokens
            return resp


class AsyncEmbeddingsClient:
    """Embed query texts from the async API (same contract, retries and errors)."""

    def __init__(self, client: openai.AsyncOpenAI, *, retry: RetryPolicy | None = None) -> None:
        self._client = client.with_options(max_retries=0)
        self._retry = retry or RetryPolicy()

    async def embed(
        self, texts: list[str], *, model: str, dimension: int | None = None
    ) -> tuple[list[list[float]], int]:
        """Return one vector per text and the prompt tokens the hub counted."""
        resp = await self._create(texts, model, **_SINGLE)
        vectors = _vectors(resp, len(texts), model)
        _check_dimension(vectors, dimension, model)
        return vectors, resp.usage.prompt_tokens if resp.usage is not None else 0

    async def embed_tokens(
        self, texts: list[str], *, model: str, dimension: int | None = None
    ) -> tuple[list[MultiVector], int]:
        """Return each text's token vectors and the prompt tokens the hub counted."""
        resp = await self._create(texts, model, **_MULTIVECTOR)
        vectors = _token_vectors(resp, len(texts), dimension, model)
        return vectors, resp.usage.prompt_tokens if resp.usage is not None else 0

    async def _create(
        self, texts: list[str], model: str, **options: Any
    ) -> CreateEmbeddingResponse:
        attempt = 0
        while True:
            try:
                return await self._client.embeddings.create(model=model, input=texts, **options)
            except openai.APIError as exc:
                await asyncio.sleep(self._retry.delay_or_raise(exc, attempt, model))
                attempt += 1

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()


def _map_error(
    exc: openai.APIError, model: str
) -> UpstreamUnavailable | UpstreamRejected | NotFound:
    """The one place SDK errors become Sieve errors."""
    if isinstance(exc, openai.APITimeoutError):
        return UpstreamUnavailable("model hub timed out on /v1/embeddings", code="upstream_timeout")
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamUnavailable(f"model hub unreachable: {exc.message}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in RETRYABLE_STATUSES:
            return UpstreamUnavailable(
                f"model hub answered {status} on /v1/embeddings",
                retry_after=parse_retry_after(exc.response.headers.get("retry-after")),
            )
        if status == 404:
            return NotFound(f"the model hub has no model {model!r}", code="model_not_found")
        return UpstreamRejected(
            f"model hub refused /v1/embeddings ({status}): {exc.message}", status=status
        )
    return UpstreamUnavailable(f"model hub error: {exc.message}")
