"""Prometheus metrics: per-stage latency, rerank outcomes, queue depth, jobs and documents.

One registry per app (not the process-global one), so several apps in one process —
tests, the embedded supervisor — never collide.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.settings import ApiSettings
from indexing.reuse import ChunkManifests
from indexing.state_store import StateStore
from services.worker.celery_app import INGEST_QUEUE, STORE_WRITES_QUEUE

__all__ = ["ApiMetrics", "metric_method", "metrics_allowed"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def metric_method(method: str) -> str:
    """The method as a label: the standard ones, every other string folds into ``other``."""
    return method if method in _METHODS else "other"


def metrics_allowed(api: ApiSettings, authorization: str | None) -> str | None:
    """None when this caller may read ``/metrics``, else why not.

    The gauges count every tenant's documents, so a tenant key is not enough: with keys
    configured only ``SIEVE_API_METRICS_KEY`` opens it (compared in constant time); the
    open single-tenant mode, which runs on loopback only, serves it openly.
    """
    if api.open_mode:
        return None
    if api.metrics_key is None:
        return "/metrics needs SIEVE_API_METRICS_KEY on a server with API keys"
    scheme, _, token = (authorization or "").partition(" ")
    expected = api.metrics_key.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        return "/metrics needs Authorization: Bearer <SIEVE_API_METRICS_KEY>"
    return None


_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# A loop that keeps up is late by well under a millisecond; a held interpreter lock by 10+.
_LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class _StateCollector(Collector):
    """Read on scrape: queue lengths and document/job counts from Redis."""

    def __init__(self, state: StateStore) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        """Yield the gauges (nothing when Redis is down: the scrape still answers)."""
        queue = GaugeMetricFamily("sieve_queue_depth", "Messages waiting", labels=["queue"])
        docs = GaugeMetricFamily(
            "sieve_documents", "Documents by state (all tenants)", labels=["state"]
        )
        memory = GaugeMetricFamily(
            "sieve_redis_memory_bytes",
            "Redis memory: used, and maxmemory (0: no limit; writes fail past it)",
            labels=["kind"],
        )
        chunks = CounterMetricFamily(
            "sieve_ingest_chunks",
            "Chunks of indexed document versions: embedded, or vectors reused from the "
            "version before (incremental re-ingest)",
            labels=["vectors"],
        )
        try:
            client = self._state.raw()
            for name in (INGEST_QUEUE, STORE_WRITES_QUEUE):
                queue.add_metric([name], float(client.llen(name)))
            # Kept by the lifecycle script in the same step as every change: O(1) here.
            for state, count in sorted(self._state.total_counts().items()):
                docs.add_metric([state], float(count))
            used, limit = self._state.memory()
            memory.add_metric(["used"], float(used))
            memory.add_metric(["max"], float(limit))
            for kind, n in ChunkManifests(client).counts().items():
                chunks.add_metric([kind], float(n))
        except Exception:  # noqa: BLE001 - a scrape must not fail because Redis is down
            return
        yield queue
        yield docs
        yield memory
        yield chunks


# pool -> {"in_use", "size", "queued", "refused"}: read on scrape (ApiPools.saturation).
PoolReadings = Callable[[], Mapping[str, Mapping[str, int]]]


class _PoolCollector(Collector):
    """Read on scrape: each thread pool's busy threads, size, queue and refusals."""

    def __init__(self, readings: PoolReadings) -> None:
        self._readings = readings

    def collect(self) -> Iterator[Metric]:
        """Yield ``sieve_pool_threads{pool,state}`` and ``sieve_pool_refused_total{pool}``."""
        threads = GaugeMetricFamily(
            "sieve_pool_threads",
            "API thread pools: threads in use, pool size, jobs queued",
            labels=["pool", "state"],
        )
        refused = CounterMetricFamily(
            "sieve_pool_refused", "Requests refused 503 because the pool was full", labels=["pool"]
        )
        for pool, load in sorted(self._readings().items()):
            for state in ("in_use", "size", "queued"):
                threads.add_metric([pool, state], float(load.get(state, 0)))
            refused.add_metric([pool], float(load.get("refused", 0)))
        yield threads
        yield refused


class ApiMetrics:
    """The API's metrics and the registry ``/metrics`` renders."""

    def __init__(self, state: StateStore | None = None) -> None:
        self.registry = CollectorRegistry()
        self.stage_seconds = Histogram(
            "sieve_query_stage_seconds",
            "Query latency per stage (embed, recall, rerank, total)",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        self.rerank_status = Counter(
            "sieve_rerank_status",
            "Rerank stage outcomes (ok, skipped, failed, timeout, circuit_open)",
            ["status"],
            registry=self.registry,
        )
        self.rerank_query_truncated = Counter(
            "sieve_rerank_query_truncated",
            "Queries cut to their head to fit the rerank model's pairs",
            registry=self.registry,
        )
        self.query_log = Counter(
            "sieve_query_log",
            "Sampled queries written to their collection's query log (recorded), or lost "
            "because Redis failed (dropped); the query was answered either way",
            ["outcome"],
            registry=self.registry,
        )
        self.hub_seconds = Histogram(
            "sieve_hub_request_seconds",
            "Model hub call latency seen by the API",
            ["endpoint"],
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "sieve_http_requests",
            "API requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "sieve_event_loop_lag_seconds",
            "How late the API's event loop woke up for a timer (services/api/loop_lag.py): "
            "every request in flight waited as long",
            buckets=_LAG_BUCKETS,
            registry=self.registry,
        )
        self.job_waiters = Gauge(
            "sieve_job_waiters",
            "Requests waiting for their job to end (?wait=true), per tenant",
            ["tenant"],
            registry=self.registry,
        )
        if state is not None:
            self.registry.register(_StateCollector(state))

    def watch_pools(self, readings: PoolReadings) -> None:
        """Expose the pools' saturation (``readings`` is called on each scrape)."""
        self.registry.register(_PoolCollector(readings))

    def observe_query(
        self, timings_ms: dict[str, float], rerank_status: str, *, query_truncated: bool = False
    ) -> None:
        """Record one answered query."""
        if query_truncated:
            self.rerank_query_truncated.inc()
        for stage, ms in timings_ms.items():
            self.stage_seconds.labels(stage).observe(ms / 1000)
        self.hub_seconds.labels("embeddings").observe(timings_ms.get("embed", 0.0) / 1000)
        if rerank_status not in ("skipped",):
            self.hub_seconds.labels("rerank").observe(timings_ms.get("rerank", 0.0) / 1000)
        self.rerank_status.labels(rerank_status).inc()
