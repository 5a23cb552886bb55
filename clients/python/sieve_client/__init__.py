"""sieve-client: a typed sync and async client for the Sieve retrieval API.

LangChain and LlamaIndex retrievers live in :mod:`sieve_client.langchain` and
:mod:`sieve_client.llamaindex` (install the ``langchain`` / ``llamaindex`` extras).
"""

from __future__ import annotations

from sieve_client.client import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    UPLOAD_TIMEOUT,
    AsyncSieveClient,
    SieveClient,
    resolve_connection,
)
from sieve_client.errors import (
    AuthenticationError,
    BadResponseError,
    ConflictError,
    ConnectionFailed,
    InvalidRequestError,
    JobWaitTimeout,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    ServiceUnavailableError,
    SieveAPIError,
    SieveClientError,
    UpstreamError,
    ValidationFailedError,
)
from sieve_client.models import (
    CollectionResponse,
    DocumentDeletedResponse,
    DocumentResponse,
    DocumentsPageResponse,
    EvaluationReport,
    HitScores,
    IngestAcceptedResponse,
    JobResponse,
    ModelInfo,
    QueryFilter,
    QueryHit,
    QueryMode,
    QueryResponse,
    RangeBounds,
    RerankReport,
)
from sieve_client.protocol import DocumentImage, UploadProgress

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "UPLOAD_TIMEOUT",
    "AsyncSieveClient",
    "AuthenticationError",
    "BadResponseError",
    "CollectionResponse",
    "ConflictError",
    "ConnectionFailed",
    "DocumentDeletedResponse",
    "DocumentImage",
    "DocumentResponse",
    "DocumentsPageResponse",
    "EvaluationReport",
    "HitScores",
    "IngestAcceptedResponse",
    "InvalidRequestError",
    "JobResponse",
    "JobWaitTimeout",
    "ModelInfo",
    "NotFoundError",
    "PayloadTooLargeError",
    "QueryFilter",
    "QueryHit",
    "QueryMode",
    "QueryResponse",
    "RangeBounds",
    "RateLimitedError",
    "RequestTimeoutError",
    "RerankReport",
    "ServerError",
    "ServiceUnavailableError",
    "SieveAPIError",
    "SieveClient",
    "SieveClientError",
    "UploadProgress",
    "UpstreamError",
    "ValidationFailedError",
    "resolve_connection",
]
