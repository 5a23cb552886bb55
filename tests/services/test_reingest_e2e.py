"""Incremental re-ingest end to end: the API over HTTP (owning the Edge store), a real Celery
worker, the real hub behind the stack's proxy (which records every input it forwards).

A one-sentence edit of an indexed document is re-uploaded: only the chunks whose text
changed reach the hub (dense and token vectors), the document's record says how many were
reused, and its stored points are those of a clean ingest of the edited text (uploaded as
another document of the same collection): same payloads, same dense, BM25 and token vectors.
The worker sends one text per request, so a vector depends on its text alone (the hub's INT8
graphs move it by up to ~0.01 with its batch) and "same" means to the last bit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from core.ids import point_id
from indexing.state_store import StateStore, state_key
from retriever.edge_store import EdgeChunkStore
from tests.services.flaky_hub import FailurePlan
from tests.services.stack import METRICS_KEY, Stack, running_stack

pytestmark = pytest.mark.slow

LATE = "answerdotai/answerai-colbert-small-v1-384"
_TOPICS = ["photosynthesis", "volcanoes", "glaciers", "enzymes", "tides"]
TEXT = "\n\n".join(
    " ".join(
        f"Sentence {i} about {topic} describes how {topic} changes over {i + 2} seasons."
        for i in range(9)
    )
    for topic in _TOPICS
)
EDITED = TEXT.replace(
    "Sentence 5 about glaciers describes how glaciers changes over 7 seasons.",
    "Sentence 5 about glaciers explains that ice sheets retreat faster in warm years.",
)


def _inputs(plan: FailurePlan) -> tuple[int, int]:
    """Texts the hub was sent so far: (dense, token vectors)."""
    dense = late = 0
    for body in plan.bodies.get("embeddings", []):
        sent = json.loads(body)
        n = len(sent["input"]) if isinstance(sent["input"], list) else 1
        if sent["model"] == LATE:
            late += n
        else:
            dense += n
    return dense, late


def _upload(stack: Stack, doc_id: str, text: str) -> tuple[tuple[int, int], dict[str, Any]]:
    """Upload one record and wait; the hub inputs it cost and the document's view."""
    before = _inputs(stack.plan)
    with stack.client() as c:
        resp = c.post(
            "/v1/collections/inc/documents", json={"documents": [{"id": doc_id, "text": text}]}
        )
        assert resp.status_code == 202, resp.text
        job = stack.wait_job(c, resp.json()["job_id"])
        assert job["counts"] == {"indexed": 1}, job
        doc: dict[str, Any] = c.get(f"/v1/collections/inc/documents/{doc_id}").json()
    after = _inputs(stack.plan)
    return (after[0] - before[0], after[1] - before[1]), doc


def test_a_one_sentence_edit_embeds_only_the_changed_chunks(
    redis_url: str, hub_url: str, tmp_path: Path
) -> None:
    with running_stack(redis_url, hub_url, tmp_path, SIEVE_INGEST_EMBED_BATCH_ITEMS="1") as stack:
        with stack.client() as c:
            created = c.post("/v1/collections", json={"name": "inc", "late_interaction": True})
            assert created.status_code == 201, created.text
        # A BM25 mean over a million chunks: the few added here do not move it, so the edited
        # and the clean document see the same length normalisation.
        client = redis.Redis.from_url(redis_url)
        try:
            key = state_key("bm25len", "team-a", "inc")
            client.hset(key, mapping={"sum": 150_000_000, "count": 1_000_000})
        finally:
            client.close()

        first, doc = _upload(stack, "a", TEXT)
        n = doc["chunk_count"]
        assert n >= 3
        assert first == (n, n)
        assert (doc["chunks_embedded"], doc["chunks_reused"]) == (n, 0)

        cost, doc = _upload(stack, "a", EDITED)
        changed = cost[0]
        assert 1 <= changed <= 2  # the edited sentence's chunk (and an overlap's)
        assert cost == (changed, changed)
        assert (doc["chunks_embedded"], doc["chunks_reused"]) == (
            changed,
            doc["chunk_count"] - changed,
        )

        clean_cost, clean = _upload(stack, "b", EDITED)
        assert clean_cost == (clean["chunk_count"], clean["chunk_count"])
        assert clean["chunks_reused"] == 0
        assert clean["chunk_count"] == doc["chunk_count"]
        # The same counts, over every collection, for Prometheus.
        with stack.client(METRICS_KEY) as c:
            scraped = c.get("/metrics").text
        totals = {
            kind: float(line.rsplit(" ", 1)[1])
            for kind in ("embedded", "reused")
            for line in scraped.splitlines()
            if line.startswith(f'sieve_ingest_chunks_total{{vectors="{kind}"}}')
        }
        reused = doc["chunk_count"] - changed
        assert totals == {"embedded": n + changed + clean["chunk_count"], "reused": reused}

    # The API is stopped: read the points of both documents from its store.
    state = StateStore.from_url(redis_url)
    try:
        rec = state.get_collection("team-a", "inc")
    finally:
        state.close()
    store = EdgeChunkStore(tmp_path / "qdrant")
    try:
        count = doc["chunk_count"]
        got = {
            d: store.get(rec.store_name, [point_id(rec.point_ns, d, i) for i in range(count)])
            for d in ("a", "b")
        }
    finally:
        store.close()
    assert [len(got[d]) for d in ("a", "b")] == [count, count]
    texts = [p.payload.text for p in got["a"]]
    assert "ice sheets retreat faster" in " ".join(texts)
    for a, b in zip(got["a"], got["b"], strict=True):
        assert a.dense == b.dense
        assert a.sparse == b.sparse
        assert a.late == b.late
        assert a.late is not None
        assert a.payload.model_dump(exclude={"document_id", "source"}) == b.payload.model_dump(
            exclude={"document_id", "source"}
        )
