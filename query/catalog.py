"""The rerank peers a query may use: the hub's model list (cached) and one client per model."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from core.errors import InvalidInput
from core.settings import ModelSettings, RerankSettings
from reranker import (
    CircuitBreaker,
    HttpReranker,
    PairBudget,
    RerankLoad,
    RerankScoreCache,
    dialect_named,
)

__all__ = ["ModelsCatalog", "RerankerPool"]


@dataclass
class ModelsCatalog:
    """The hub's ``/v1/models`` list, cached, so a request can name a rerank model."""

    client: httpx.AsyncClient
    ttl_s: float
    _models: dict[str, dict[str, Any]] | None = None
    _fetched: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def listing(self) -> list[dict[str, Any]]:
        """The hub's model list as it answered (``data``)."""
        resp = await self.client.get("models")
        resp.raise_for_status()
        body = resp.json()
        data = body.get("data", []) if isinstance(body, dict) else []
        return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]

    async def _cached(self) -> dict[str, dict[str, Any]] | None:
        async with self._lock:
            if self._models is None or time.monotonic() - self._fetched > self.ttl_s:
                try:
                    self._models = {m["id"]: m for m in await self.listing()}
                    self._fetched = time.monotonic()
                except (httpx.HTTPError, ValueError):
                    return self._models
            return self._models

    async def ids(self) -> frozenset[str] | None:
        """Model ids, or None when the hub cannot be asked right now."""
        models = await self._cached()
        return None if models is None else frozenset(models)

    async def context_tokens(self, model: str) -> int | None:
        """The model's pair context when the hub states it (``max_model_len``), else None."""
        entry = (await self._cached() or {}).get(model, {})
        value = entry.get("max_model_len")
        return (
            value if isinstance(value, int) and not isinstance(value, bool) and value >= 2 else None
        )

    async def check(self, model: str) -> None:
        """``InvalidInput`` when the hub answers and does not list ``model``."""
        ids = await self.ids()
        if ids is not None and model not in ids:
            raise InvalidInput(
                f"unknown rerank model {model!r}; the hub serves: {', '.join(sorted(ids))}",
                code="unknown_model",
            )


class RerankerPool:
    """One ``HttpReranker`` per model (each with its own circuit breaker), sharing one client."""

    def __init__(
        self, client: httpx.AsyncClient, models: ModelSettings, rerank: RerankSettings
    ) -> None:
        self._client = client
        self._models = models
        self._rerank = rerank
        self._pool: dict[tuple[str, int | None], HttpReranker] = {}
        self._loads: dict[str, RerankLoad] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self.cache = RerankScoreCache(rerank.cache_size)

    def load(self, model: str) -> RerankLoad:
        """The in-flight pairs and recent cost a pair of ``model``'s peer."""
        if model not in self._loads:
            s = self._rerank
            self._loads[model] = RerankLoad(budget_ms=s.budget_ms, min_depth=s.min_depth)
        return self._loads[model]

    def get(self, model: str, context_tokens: int | None = None) -> HttpReranker:
        """The client for ``model``, whose pairs hold ``context_tokens`` when known."""
        key = (model, context_tokens)
        if key not in self._pool:
            s = self._rerank
            self._pool[key] = HttpReranker(
                self._client,
                model=model,
                endpoint="rerank",
                dialect=dialect_named(s.dialect_for(model)),
                api_key=self._models.api_key,
                timeout_s=s.timeout_s,
                # The stage's budget per query, retries included: retrying an attempt that
                # timed out would queue more work on a hub that is already too slow.
                total_timeout_s=s.timeout_s,
                max_retries=s.max_retries,
                max_documents_per_request=s.max_documents_per_request,
                max_images_per_request=s.max_images_per_request,
                max_concurrency=s.max_concurrency,
                budget=PairBudget(
                    context_tokens=s.context_tokens,
                    max_document_tokens=s.document_tokens,
                    max_query_share=s.query_share,
                    model_context_tokens=context_tokens,
                ),
                # One breaker a peer model, whatever context its clients were built for.
                breaker=self._breakers.setdefault(
                    model,
                    CircuitBreaker(
                        failure_threshold=s.breaker_failures, reset_timeout_s=s.breaker_reset_s
                    ),
                ),
            )
        return self._pool[key]
