"""Stable error codes the rerank client puts on the core errors it raises."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RerankErrorCode"]


class RerankErrorCode(StrEnum):
    """Why a rerank call failed; the policy turns these into ``rerank.status``."""

    TIMEOUT = "rerank_timeout"
    CIRCUIT_OPEN = "rerank_circuit_open"
    UNAVAILABLE = "rerank_unavailable"
    RATE_LIMITED = "rerank_rate_limited"
    BAD_RESPONSE = "rerank_bad_response"
    REJECTED = "rerank_rejected"
