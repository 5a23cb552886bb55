"""The /rerank wire format: one dialect object per peer, and the liberal response/error parsers.

A :class:`RerankDialect` builds the request a peer takes, parses its answer, and says what
the peer supports (images and in which form, documents per call, whether it answers every
document or cuts to ``top_n``). ``DIALECTS`` holds one per peer Sieve can be pointed at:
IONOS, vLLM, Cohere, Jina, Infinity and TEI; settings choose one per model by name.
Strict in what we send (only documented fields), liberal in what we accept: every dialect
parses with the same reader of every known response and error shape (model-api.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from reranker.budget import PairBudget
from reranker.documents import PreparedDocument

__all__ = [
    "DIALECTS",
    "ImageForm",
    "MalformedResponse",
    "PeerError",
    "RerankDialect",
    "RerankScore",
    "TeiDialect",
    "dialect_named",
    "normalize_scores",
    "parse_error_body",
    "parse_rerank_response",
]


class MalformedResponse(ValueError):
    """A 2xx body that is not a rerank response we can map back to the documents sent."""


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


class ImageForm(StrEnum):
    """How a peer takes an image document, if at all."""

    # Text only: an image document goes as its text (caption or OCR), its images dropped.
    NONE = "none"
    # vLLM's content parts (IONOS runs vLLM): {"content": [image_url parts..., text part]}.
    CONTENT_PARTS = "content_parts"
    # Jina's document object: {"text": ..., "image": <URL or base64>}, one image each.
    JINA_OBJECT = "jina_object"


@dataclass(frozen=True, slots=True)
class RerankDialect:
    """A /rerank peer's request shape and what it supports (the IONOS/vLLM/Cohere/Jina shape).

    ``max_documents_per_request`` is the peer's own documented cap on documents per call
    (None: none documented; Sieve's setting still applies); ``scores_all_documents`` is True
    for a peer that scores every document and takes no ``top_n``, False for one that cuts
    its answer to ``top_n`` (the client then asks for every document it sent).
    ``max_document_tokens`` is a cap the peer itself puts on each document's tokens: the
    client cuts there first, so that the text the peer scores is the text it budgeted.
    """

    name: str
    images: ImageForm = ImageForm.NONE
    max_documents_per_request: int | None = None
    max_images_per_document: int | None = None
    max_document_tokens: int | None = None
    scores_all_documents: bool = False

    @property
    def supports_images(self) -> bool:
        """Whether image documents can go to this peer as images."""
        return self.images is not ImageForm.NONE

    def documents_per_request(self, configured: int) -> int:
        """The documents one request may carry: Sieve's setting, within the peer's own cap."""
        cap = self.max_documents_per_request
        return configured if cap is None else min(configured, cap)

    def budget(self, budget: PairBudget) -> PairBudget:
        """``budget`` with its per-document cap within the peer's own, if it has one."""
        cap, own = self.max_document_tokens, budget.max_document_tokens
        if cap is None or (own is not None and own <= cap):
            return budget
        return replace(budget, max_document_tokens=cap)

    def document(self, document: PreparedDocument) -> str | dict[str, Any]:
        """A text document as a plain string; an image document in this peer's image form."""
        if not document.image_uris or self.images is ImageForm.NONE:
            return document.text
        if self.images is ImageForm.JINA_OBJECT:
            body: dict[str, Any] = {"image": document.image_uris[0]}
            if document.text:
                body["text"] = document.text
            return body
        parts: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": uri}} for uri in document.image_uris
        ]
        if document.text:
            parts.append({"type": "text", "text": document.text})
        return {"content": parts}

    def build_request(
        self,
        model: str,
        query: str,
        documents: Sequence[PreparedDocument],
        *,
        top_n: int | None = None,
    ) -> dict[str, Any]:
        """The minimal request body: ``model``, ``query``, ``documents`` and ``top_n`` only."""
        body: dict[str, Any] = {
            "model": model,
            "query": query,
            "documents": [self.document(doc) for doc in documents],
        }
        if top_n is not None:
            body["top_n"] = top_n
        return body

    def parse_response(
        self, body: Any, n_documents: int, *, normalize: bool = True
    ) -> list[RerankScore]:
        """Scores mapped back through ``index`` (see :func:`parse_rerank_response`).

        Raises:
            MalformedResponse: the body is not a rerank response for ``n_documents``.
        """
        return parse_rerank_response(body, n_documents, normalize=normalize)


@dataclass(frozen=True, slots=True)
class TeiDialect(RerankDialect):
    """Hugging Face TEI's ``/rerank``: ``query`` and ``texts`` (strings), no ``model``/``top_n``.

    ``truncate`` is sent: TEI refuses a pair over the model's input length unless asked to
    cut it, and the client's token estimate cannot know a TEI model's own limit.
    """

    def build_request(
        self,
        model: str,
        query: str,
        documents: Sequence[PreparedDocument],
        *,
        top_n: int | None = None,
    ) -> dict[str, Any]:
        """``{"query", "texts", "truncate": true}``: TEI serves one model and scores every text."""
        del model, top_n  # no such fields in TEI's request
        return {"query": query, "texts": [doc.text for doc in documents], "truncate": True}


# Each peer's documented shape (model-api.md; the peers' API references):
# - IONOS: /v1/rerank, vLLM's content parts for images (Qwen3-VL-Reranker), no documented cap.
# - vLLM: /rerank, /v1/rerank, /v2/rerank; content parts for multimodal rerankers.
# - Cohere v2: /v2/rerank, documents are strings; "a maximum of 10,000 documents"; each
#   document is cut at max_tokens_per_doc, 4,096 tokens unless the request says otherwise.
# - Jina: /v1/rerank; documents are strings or {"text", "image"} objects (jina-reranker-m0).
# - Infinity: /rerank, strings only; its request schema caps documents at 2,048.
# - TEI: /rerank, {"query", "texts"} -> [{"index", "score"}]; --max-client-batch-size 32.
DIALECTS: Mapping[str, RerankDialect] = {
    dialect.name: dialect
    for dialect in (
        RerankDialect("ionos", images=ImageForm.CONTENT_PARTS),
        RerankDialect("vllm", images=ImageForm.CONTENT_PARTS),
        RerankDialect("cohere", max_documents_per_request=10_000, max_document_tokens=4096),
        RerankDialect("jina", images=ImageForm.JINA_OBJECT, max_images_per_document=1),
        RerankDialect("infinity", max_documents_per_request=2048),
        TeiDialect("tei", max_documents_per_request=32, scores_all_documents=True),
    )
}


def dialect_named(name: str) -> RerankDialect:
    """The dialect called ``name``.

    Raises:
        ValueError: no such dialect (the message lists the known ones).
    """
    try:
        return DIALECTS[name]
    except KeyError:
        known = ", ".join(sorted(DIALECTS))
        raise ValueError(f"unknown rerank dialect {name!r}; known: {known}") from None
