"""Late interaction end to end: a collection created with it ingests token vectors through
the real worker and hub, and its hits carry the MaxSim score (``scores.late``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.services.stack import Stack, running_stack
from tests.services.test_query_e2e import DOCS, QUERY

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(
    redis_url: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(redis_url, hub_url, tmp_path_factory.mktemp("latestack")) as handle:
        with handle.client() as c:
            created = c.post("/v1/collections", json={"name": "late", "late_interaction": True})
            assert created.status_code == 201, created.text
            assert c.post("/v1/collections", json={"name": "plain"}).status_code == 201
            for name in ("late", "plain"):
                job = c.post(f"/v1/collections/{name}/documents", json={"documents": DOCS}).json()
                assert handle.wait_job(c, job["job_id"])["counts"] == {"indexed": 4}
        yield handle


def _query(stack: Stack, collection: str = "late", **body: object) -> dict[str, Any]:
    with stack.client() as c:
        resp = c.post(
            f"/v1/collections/{collection}/query",
            json={"query": QUERY, "rerank": False, "top_n": 4, **body},
        )
        assert resp.status_code == 200, resp.text
        out: dict[str, Any] = resp.json()
        return out


def test_collection_view_reports_late_interaction_and_storage(stack: Stack) -> None:
    with stack.client() as c:
        late = c.get("/v1/collections/late").json()
        plain = c.get("/v1/collections/plain").json()
    assert (late["late_interaction"], late["late_dimension"]) == (True, 384)
    assert late["late_model"] == "answerdotai/answerai-colbert-small-v1-384"
    storage = late["storage_per_chunk"]
    assert storage["dense_bytes"] == 4 * 384
    assert storage["late_tokens"] > 10  # each DOCS text is one chunk of 20-40 tokens
    assert storage["late_bytes_int8"] == pytest.approx(storage["late_tokens"] * 384, abs=384)
    assert storage["late_bytes_float32"] == 4 * storage["late_bytes_int8"]
    assert plain["late_interaction"] is False
    assert plain["storage_per_chunk"]["late_tokens"] is None


def test_hits_carry_the_late_score(stack: Stack) -> None:
    out = _query(stack)
    results = out["results"]
    assert results[0]["document_id"] == "photosynthesis"
    assert all(r["scores"]["late"] is not None for r in results)
    late = {r["document_id"]: r["scores"]["late"] for r in results}
    # MaxSim of unit token vectors: at most one per query token, the relevant passage best.
    assert max(late, key=late.__getitem__) == "photosynthesis"
    assert all(_query(stack, "plain")["results"][0]["scores"][k] is None for k in ("late",))


def test_the_late_stage_can_be_skipped_or_kept_out_of_the_order(stack: Stack) -> None:
    skipped = _query(stack, late=False)["results"]
    assert all(r["scores"]["late"] is None for r in skipped)
    reported = _query(stack, late_weight=0)["results"]
    assert [r["document_id"] for r in reported] == [r["document_id"] for r in skipped]
    assert all(r["scores"]["late"] is not None for r in reported)
    by_late = _query(stack, late_recall_weight=0, late_weight=1)["results"]
    scores = [r["scores"]["late"] for r in by_late]
    assert scores == sorted(scores, reverse=True)


def test_late_model_without_late_interaction_is_refused(stack: Stack) -> None:
    with stack.client() as c:
        resp = c.post("/v1/collections", json={"name": "odd", "late_model": "x"})
        unknown = c.post(
            "/v1/collections",
            json={"name": "odd2", "late_interaction": True, "late_model": "nope/nope"},
        )
    assert resp.status_code == 400
    assert set(resp.json()["error"]) == {"code", "message", "request_id"}
    assert unknown.status_code in (400, 404)
    assert "nope/nope" in unknown.json()["error"]["message"]
