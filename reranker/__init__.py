"""The rerank stage: the /rerank client (dialects, batching, budget, retries, breaker), policy."""

from reranker.breaker import BreakerState, CircuitBreaker
from reranker.budget import (
    PairBudget,
    TokenCounter,
    estimate_tokens,
    fit_document,
    fit_query,
    fit_query_strictly,
    truncate_to_tokens,
)
from reranker.cache import RerankScoreCache, score_key
from reranker.codes import RerankErrorCode
from reranker.dialects import (
    DIALECTS,
    ImageForm,
    MalformedResponse,
    PeerError,
    RerankDialect,
    RerankScore,
    TeiDialect,
    dialect_named,
    normalize_scores,
    parse_error_body,
    parse_rerank_response,
)
from reranker.documents import PreparedDocument, RerankDocument
from reranker.images import PreparedImage, prepare_image
from reranker.load import RerankLoad
from reranker.policy import (
    DEFAULT_POLICY,
    DEFAULT_TOP_N,
    FusionParams,
    OnRerankError,
    RankedCandidate,
    RerankDecision,
    RerankFailure,
    RerankOutcome,
    RerankStatus,
    ScorePolicy,
    autocut,
    failure_from_error,
    finalize_ranking,
    resolve_min_score,
)
from reranker.rerank_client import HttpReranker, RerankResult
from reranker.splitting import one_image_document_per_request, split_requests

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_TOP_N",
    "DIALECTS",
    "BreakerState",
    "CircuitBreaker",
    "FusionParams",
    "HttpReranker",
    "ImageForm",
    "MalformedResponse",
    "OnRerankError",
    "PairBudget",
    "PeerError",
    "PreparedDocument",
    "PreparedImage",
    "RankedCandidate",
    "RerankDecision",
    "RerankDialect",
    "RerankDocument",
    "RerankErrorCode",
    "RerankFailure",
    "RerankLoad",
    "RerankOutcome",
    "RerankResult",
    "RerankScore",
    "RerankScoreCache",
    "RerankStatus",
    "ScorePolicy",
    "TeiDialect",
    "TokenCounter",
    "autocut",
    "dialect_named",
    "estimate_tokens",
    "failure_from_error",
    "finalize_ranking",
    "fit_document",
    "fit_query",
    "fit_query_strictly",
    "normalize_scores",
    "one_image_document_per_request",
    "parse_error_body",
    "parse_rerank_response",
    "prepare_image",
    "resolve_min_score",
    "score_key",
    "split_requests",
    "truncate_to_tokens",
]
