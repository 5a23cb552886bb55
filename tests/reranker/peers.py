"""Fake /rerank peers for httpx.MockTransport, built from the documented shapes (model-api.md).

IONOS, Cohere, Jina, Infinity and TEI cannot run here; these answer in their shapes with a
toy relevance (the share of query words a document contains), so tests can check order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

Handler = Callable[[httpx.Request], httpx.Response]

PEERS = ("ionos", "vllm_logits", "cohere", "jina", "infinity", "tei")
# The mock that answers for each of reranker.dialects.DIALECTS (vLLM's sends raw logits).
PEER_OF_DIALECT = {
    "ionos": "ionos",
    "vllm": "vllm_logits",
    "cohere": "cohere",
    "jina": "jina",
    "infinity": "infinity",
    "tei": "tei",
}

QUERY = "apple pie recipe"
DOCUMENTS = [
    "car engine repair",
    "apple pie recipe with cinnamon",
    "apple orchard",
    "a pie recipe book",
]
EXPECTED_ORDER = [1, 3, 2, 0]


def document_text(document: Any) -> str:
    """The text of a wire document: a string, a Jina object, or the content-part form's text."""
    if isinstance(document, str):
        return document
    if "content" not in document:  # Jina: {"text", "image"}
        return str(document.get("text", ""))
    parts = document["content"]
    return " ".join(p["text"] for p in parts if p.get("type") == "text")


# Each peer's documented request: its fields, the document forms it takes, and its cap on
# documents per call (None: none documented).
_FIELDS = {
    "ionos": {"model", "query", "documents", "top_n"},
    "vllm_logits": {"model", "query", "documents", "top_n"},
    "cohere": {"model", "query", "documents", "top_n", "max_tokens_per_doc"},
    "jina": {"model", "query", "documents", "top_n", "return_documents"},
    "infinity": {"model", "query", "documents", "top_n", "return_documents", "raw_scores"},
    "tei": {"query", "texts", "truncate", "raw_scores", "return_text", "truncation_direction"},
}
_MAX_DOCUMENTS = {"cohere": 10_000, "infinity": 2048, "tei": 32}


def _content_parts(document: Any) -> bool:
    parts = document.get("content") if isinstance(document, dict) else None
    return isinstance(parts, list) and set(document) == {"content"}


def _jina_object(document: Any) -> bool:
    return isinstance(document, dict) and bool(set(document)) and set(document) <= {"text", "image"}


_DOCUMENT_FORMS: dict[str, Callable[[Any], bool]] = {
    "ionos": lambda d: isinstance(d, str) or _content_parts(d),
    "vllm_logits": lambda d: isinstance(d, str) or _content_parts(d),
    "cohere": lambda d: isinstance(d, str),  # v2: "a list of texts"
    "jina": lambda d: isinstance(d, str) or _jina_object(d),
    "infinity": lambda d: isinstance(d, str),
    "tei": lambda d: isinstance(d, str),
}


def _refusal(peer: str, status: int, message: str) -> httpx.Response:
    """``message`` in the peer's own error shape (model-api.md, "Errors")."""
    body: Any
    if peer == "tei":
        body = {"error": message, "error_type": "Validation"}
    elif peer == "cohere":
        body = {"message": message}
    elif peer == "ionos":
        body = {"httpStatus": status, "messages": [{"errorCode": "paas-400", "message": message}]}
    elif peer == "vllm_logits":
        body = {"object": "error", "message": message, "type": "BadRequestError", "code": status}
    else:  # Jina and Infinity are FastAPI apps
        body = {"detail": message}
    return httpx.Response(status, json=body)


def check_request(peer: str, body: dict[str, Any]) -> httpx.Response | None:
    """The peer's refusal of a request outside its documented shape; None when it is inside."""
    field = "texts" if peer == "tei" else "documents"
    documents = body.get(field)
    if not isinstance(documents, list) or not documents or "query" not in body:
        return _refusal(peer, 422, f"missing field `{field}` or `query`")
    if extra := set(body) - _FIELDS[peer]:
        return _refusal(peer, 422, f"unknown fields: {sorted(extra)}")
    if peer != "tei" and "model" not in body:
        return _refusal(peer, 422, "missing field `model`")
    cap = _MAX_DOCUMENTS.get(peer)
    if cap is not None and len(documents) > cap:
        return _refusal(peer, 413, f"batch size {len(documents)} > maximum allowed {cap}")
    if not all(_DOCUMENT_FORMS[peer](d) for d in documents):
        return _refusal(peer, 422, f"{field}: a document is not in a form this peer takes")
    return None


def relevance(query: str, text: str) -> float:
    """Share of the query's words found in the text: a toy score in [0, 1]."""
    words = query.lower().split()
    found = set(text.lower().split())
    return sum(w in found for w in words) / len(words)


def _ranked(query: str, texts: list[str], top_n: int | None) -> list[tuple[int, float, str]]:
    scored = [(i, relevance(query, t), t) for i, t in enumerate(texts)]
    scored.sort(key=lambda item: -item[1])
    return scored[:top_n] if top_n else scored


def respond(peer: str, body: dict[str, Any]) -> httpx.Response:
    """Answer a rerank request the way ``peer`` would (refusing what it does not take)."""
    if (refusal := check_request(peer, body)) is not None:
        return refusal
    if peer == "tei":
        ranked = _ranked(body["query"], body["texts"], None)
        return httpx.Response(200, json=[{"index": i, "score": s} for i, s, _ in ranked])
    texts = [document_text(d) for d in body["documents"]]
    ranked = _ranked(body["query"], texts, body.get("top_n"))
    if peer == "ionos":
        results: Any = {
            "id": "rerank-1",
            "model": body["model"],
            "results": [
                {"index": i, "relevance_score": s, "document": {"text": t}} for i, s, t in ranked
            ],
            "usage": {"prompt_tokens": 10, "total_tokens": 10},
        }
    elif peer == "vllm_logits":  # raw logits: the client must squash them
        results = {"results": [{"index": i, "relevance_score": 8 * s - 4} for i, s, _ in ranked]}
    elif peer == "cohere":
        results = {"id": "c", "results": [{"index": i, "relevance_score": s} for i, s, _ in ranked]}
    elif peer == "jina":
        results = {
            "model": body["model"],
            "usage": {"total_tokens": 10},
            "results": [{"index": i, "relevance_score": s, "document": t} for i, s, t in ranked],
        }
    elif peer == "infinity":
        results = {"object": "rerank", "data": [{"index": i, "score": s} for i, s, _ in ranked]}
    else:
        raise AssertionError(f"unknown peer {peer}")
    return httpx.Response(200, json=results)


def peer_handler(peer: str, seen: list[dict[str, Any]] | None = None) -> Handler:
    """A MockTransport handler answering as ``peer``; request bodies are appended to ``seen``."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if seen is not None:
            seen.append(body)
        return respond(peer, body)

    return handle
