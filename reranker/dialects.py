"""The /rerank wire format: build our strict request, parse every peer's response and error.

Strict in what we send (only ``model``, ``query``, ``documents``, ``top_n``), liberal in
what we accept (IONOS, vLLM, Cohere, Jina, Infinity, TEI), per model-api.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reranker.documents import PreparedDocument

__all__ = [
    "MalformedResponse",
    "PeerError",
    "RequestDialect",
    "RerankScore",
    "build_rerank_request",
    "document_wire_form",
    "normalize_scores",
    "parse_error_body",
    "parse_rerank_response",
]


class MalformedResponse(ValueError):
    """A 2xx body that is not a rerank response we can map back to the documents sent."""


class RequestDialect(StrEnum):
    """Which request shape a peer takes: the IONOS/vLLM/Cohere/Jina one, or TEI's."""

    STANDARD = "standard"
    TEI = "tei"


@dataclass(frozen=True, slots=True)
class RerankScore:
    """One document's score, mapped back to its 0-based position in the request."""

    index: int
    score: float


@dataclass(frozen=True, slots=True)
class PeerError:
    """What a peer said when it refused a request, whatever its dialect."""

    message: str
    type: str | None = None
    code: str | None = None


def document_wire_form(document: PreparedDocument) -> str | dict[str, Any]:
    """A text document as a plain string; an image document in vLLM's content-part form."""
    if not document.image_uris:
        return document.text
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": uri}} for uri in document.image_uris
    ]
    if document.text:
        parts.append({"type": "text", "text": document.text})
    return {"content": parts}


def build_rerank_request(
    model: str,
    query: str,
    documents: Sequence[PreparedDocument],
    *,
    top_n: int | None = None,
    dialect: RequestDialect = RequestDialect.STANDARD,
) -> dict[str, Any]:
    """Build the minimal request body; never fields IONOS does not document.

    TEI takes ``texts`` (strings only) and has no ``model`` or ``top_n``; image parts
    cannot go to it, so only each document's text is sent there.
    """
    if dialect is RequestDialect.TEI:
        return {"query": query, "texts": [doc.text for doc in documents]}
    body: dict[str, Any] = {
        "model": model,
        "query": query,
        "documents": [document_wire_form(doc) for doc in documents],
    }
    if top_n is not None:
        body["top_n"] = top_n
    return body


def _results_list(body: Any) -> list[Any]:
    if isinstance(body, list):  # TEI: a top-level array
        return body
    if isinstance(body, Mapping):
        for key in ("results", "data"):
            value = body.get(key)
            if isinstance(value, list):
                return value
    raise MalformedResponse("no results list under 'results', 'data' or at the top level")


def _score_of(item: Mapping[str, Any]) -> float:
    for key in ("relevance_score", "score"):
        value = item.get(key)
        # bool is an int subclass; a peer sending true/false sent no score.
        if isinstance(value, int | float) and not isinstance(value, bool):
            score = float(value)
            if not math.isfinite(score):
                raise MalformedResponse(f"score {value!r} is not finite")
            return score
    raise MalformedResponse("result has no numeric 'relevance_score' or 'score'")


def parse_rerank_response(
    body: Any, n_documents: int, *, normalize: bool = True
) -> list[RerankScore]:
    """Parse any peer's rerank response into scores mapped back through ``index``.

    ``document`` may be absent, a string or an object: it is ignored, the request holds the
    documents. With ``normalize`` the sigmoid rule of :func:`normalize_scores` is applied;
    a caller merging several responses passes False and normalises the merged scores once.

    Raises:
        MalformedResponse: when the body is not a rerank response or an index is out of range
            or repeated.
    """
    seen: set[int] = set()
    scores: list[RerankScore] = []
    for item in _results_list(body):
        if not isinstance(item, Mapping):
            raise MalformedResponse(f"result is not an object: {item!r:.80}")
        index = item.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            raise MalformedResponse("result has no integer 'index'")
        if not 0 <= index < n_documents:
            raise MalformedResponse(
                f"result index {index} is outside the {n_documents} documents sent"
            )
        if index in seen:
            raise MalformedResponse(f"result index {index} appears twice")
        seen.add(index)
        scores.append(RerankScore(index, _score_of(item)))
    return normalize_scores(scores) if normalize else scores


def _sigmoid(x: float) -> float:
    # Split by sign so that exp() never overflows on large logits.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def normalize_scores(scores: Sequence[RerankScore]) -> list[RerankScore]:
    """Apply a sigmoid to every score when any is outside [0, 1] (the peer sent logits).

    All or none: mixing squashed and raw scores would make them incomparable, and the
    cutoff is defined on the [0, 1] scale.
    """
    if all(0.0 <= s.score <= 1.0 for s in scores):
        return list(scores)
    return [RerankScore(s.index, _sigmoid(s.score)) for s in scores]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _openai_error(body: Mapping[str, Any]) -> PeerError | None:
    # Ours / OpenAI: {"error": {"message", "type", "param", "code"}}; TEI: {"error": "…"}.
    error = body.get("error")
    if isinstance(error, Mapping) and (message := _text(error.get("message"))):
        return PeerError(message, _opt_str(error.get("type")), _opt_str(error.get("code")))
    if message := _text(error):
        return PeerError(message, _opt_str(body.get("error_type")))
    return None


def _ionos_error(body: Mapping[str, Any]) -> PeerError | None:
    # IONOS: {"httpStatus": 401, "messages": [{"errorCode": "paas-auth-1", "message": "…"}]}.
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    texts: list[str] = []
    codes: list[str] = []
    for entry in messages:
        if isinstance(entry, Mapping):
            if msg := _text(entry.get("message")):
                texts.append(msg)
            if entry.get("errorCode") is not None:
                codes.append(str(entry["errorCode"]))
    if not texts and not codes:
        return None
    return PeerError("; ".join(texts) or "error", None, ", ".join(codes) or None)


def _flat_error(body: Mapping[str, Any]) -> PeerError | None:
    # Older vLLM {"object": "error", "message", "type", "code"}; Cohere {"message"};
    # FastAPI-style {"detail": "…"}.
    if message := _text(body.get("message")):
        return PeerError(message, _opt_str(body.get("type")), _opt_str(body.get("code")))
    if message := _text(body.get("detail")):
        return PeerError(message)
    return None


def parse_error_body(body: Any) -> PeerError | None:
    """Read a peer's error body in any known dialect; None when it is none of them.

    Known: ours/OpenAI ``{"error": {"message", "type", "code"}}``, TEI ``{"error": "…",
    "error_type"}``, older vLLM ``{"object": "error", "message", "type", "code"}``, Cohere
    ``{"message"}``, IONOS ``{"httpStatus", "messages": [{"errorCode", "message"}]}``;
    a plain-text body is taken as the message.
    """
    if isinstance(body, str):
        text = body.strip()
        return PeerError(text[:500]) if text else None
    if not isinstance(body, Mapping):
        return None
    for parse in (_openai_error, _ionos_error, _flat_error):
        if (error := parse(body)) is not None:
            return error
    return None
