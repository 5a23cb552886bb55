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

QUERY = "apple pie recipe"
DOCUMENTS = [
    "car engine repair",
    "apple pie recipe with cinnamon",
    "apple orchard",
    "a pie recipe book",
]
EXPECTED_ORDER = [1, 3, 2, 0]


def document_text(document: Any) -> str:
    """The text of a wire document: a string, or the text parts of the content-part form."""
    if isinstance(document, str):
        return document
    parts = document.get("content", [])
    return " ".join(p["text"] for p in parts if p.get("type") == "text")


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
    """Answer a rerank request the way ``peer`` would."""
    if peer == "tei":
        if "texts" not in body:  # TEI has no 'documents' field
            return httpx.Response(
                422, json={"error": "missing field `texts`", "error_type": "Validation"}
            )
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
