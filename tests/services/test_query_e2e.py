"""Query end to end over HTTP: real hub, real Edge store, the rerank stage and its cutoff."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.services.stack import METRICS_KEY, Stack, running_stack

pytestmark = pytest.mark.slow

DOCS = [
    {
        "id": "qdrant",
        "title": "Qdrant",
        "text": "Qdrant is a vector database that stores dense and sparse vectors with payloads "
        "and answers nearest-neighbour queries with filters.",
        "metadata": {"lang": "en", "year": 2021, "kind": "database"},
    },
    {
        "id": "espresso",
        "title": "Espresso",
        "text": "Espresso is coffee brewed by forcing hot water through finely ground beans at "
        "high pressure; a good shot has a thick crema.",
        "metadata": {"lang": "en", "year": 1901, "kind": "food"},
    },
    {
        "id": "photosynthesis",
        "title": "Photosynthesis",
        "text": "Photosynthesis converts light energy into chemical energy: plants use sunlight, "
        "water and carbon dioxide to make glucose and release oxygen.",
        "metadata": {"lang": "en", "year": 1779, "kind": "biology"},
    },
    {
        "id": "kaffee",
        "title": "Kaffee",
        "text": "Kaffee ist ein Getränk aus gerösteten und gemahlenen Kaffeebohnen.",
        "metadata": {"lang": "de", "year": 1700, "kind": "food"},
    },
]

QUERY = "how do plants turn sunlight into sugar"


@pytest.fixture(scope="module")
def stack(
    redis_url: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(
        redis_url,
        hub_url,
        tmp_path_factory.mktemp("qstack"),
        SIEVE_RERANK_TIMEOUT_S="3",
        SIEVE_RERANK_MAX_RETRIES="1",
        SIEVE_RERANK_BREAKER_FAILURES="3",
        SIEVE_RERANK_BREAKER_RESET_S="2",
        # Long queries are cut to a fifth of the pair: their pairs stay cheap within the 3 s.
        SIEVE_RERANK_QUERY_SHARE="0.2",
    ) as handle:
        with handle.client() as c:
            assert c.post("/v1/collections", json={"name": "kb"}).status_code == 201
            assert c.post("/v1/collections", json={"name": "kb2"}).status_code == 201
            job = c.post("/v1/collections/kb/documents", json={"documents": DOCS}).json()
            assert handle.wait_job(c, job["job_id"])["counts"] == {"indexed": 4}
            extra = [{"id": "chlorophyll", "text": "Chlorophyll absorbs light for plants."}]
            job = c.post("/v1/collections/kb2/documents", json={"documents": extra}).json()
            handle.wait_job(c, job["job_id"])
        yield handle


def _query(stack: Stack, **body: object) -> dict[str, object]:
    with stack.client() as c:
        resp = c.post("/v1/collections/kb/query", json={"query": QUERY, **body})
        assert resp.status_code == 200, resp.text
        out: dict[str, object] = resp.json()
        return out


def test_result_shape_provenance_scores_timings_usage(stack: Stack) -> None:
    out = _query(stack, query=f"{QUERY}?", top_n=3, final="fusion")
    results = out["results"]
    assert isinstance(results, list)
    assert [r["rank"] for r in results] == [1, 2, 3]
    top = results[0]
    assert top["document_id"] == "photosynthesis"
    assert top["text"] in DOCS[2]["text"]
    assert (top["char_start"], top["title"], top["source"]) == (0, "Photosynthesis", "documents[2]")
    assert top["metadata"] == DOCS[2]["metadata"]
    scores = top["scores"]
    assert all(scores[k] is not None for k in ("dense", "sparse", "fused", "rerank", "final"))
    assert 0 <= scores["rerank"] <= 1
    rerank = out["rerank"]
    assert isinstance(rerank, dict)
    assert (rerank["status"], rerank["model"], rerank["candidates"]) == (
        "ok",
        "cross-encoder/ms-marco-MiniLM-L-12-v2",
        4,
    )
    timings = out["timings_ms"]
    assert isinstance(timings, dict)
    assert set(timings) == {"embed", "recall", "rerank", "total"}
    assert timings["total"] >= timings["rerank"] > 0
    usage = out["usage"]
    assert isinstance(usage, dict)
    assert usage["embed_tokens"] > 0
    assert usage["rerank_tokens"] > 0


def test_cutoff_drops_low_scores_and_empty_is_valid(stack: Stack) -> None:
    everything = _query(stack, top_n=4, min_score=0.0)
    assert len(everything["results"]) == 4  # type: ignore[arg-type]
    strict = _query(stack, top_n=4, min_score=0.5, final="rerank")
    kept = strict["results"]
    assert isinstance(kept, list)
    assert all(r["scores"]["rerank"] >= 0.5 for r in kept)
    assert strict["rerank"]["dropped_by_cutoff"] == 4 - len(kept)  # type: ignore[index]
    impossible = _query(stack, query="zzzz qqqq xxxx", min_score=1.0)
    assert impossible["results"] == []
    assert impossible["rerank"]["status"] == "ok"  # type: ignore[index]
    assert impossible["rerank"]["min_score"] == 1.0  # type: ignore[index]


def test_filters(stack: Stack) -> None:
    only = _query(stack, filter={"document_ids": ["espresso", "kaffee"]})
    assert {r["document_id"] for r in only["results"]} == {"espresso", "kaffee"}  # type: ignore[attr-defined]
    german = _query(stack, filter={"metadata": {"lang": "de"}})
    assert [r["document_id"] for r in german["results"]] == ["kaffee"]  # type: ignore[attr-defined]
    old = _query(stack, filter={"metadata": {"year": {"lt": 1800}, "kind": ["food", "biology"]}})
    assert {r["document_id"] for r in old["results"]} == {"photosynthesis", "kaffee"}  # type: ignore[attr-defined]
    with stack.client() as c:
        bad = c.post(
            "/v1/collections/kb/query",
            json={"query": QUERY, "filter": {"metadata": {"year": {"between": 1}}}},
        )
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "invalid_request"


def test_final_score_policies(stack: Stack) -> None:
    by_rerank = _query(stack, top_n=4, final="rerank")
    finals = [r["scores"]["final"] for r in by_rerank["results"]]  # type: ignore[attr-defined]
    reranks = [r["scores"]["rerank"] for r in by_rerank["results"]]  # type: ignore[attr-defined]
    assert finals == reranks == sorted(reranks, reverse=True)
    fused = _query(stack, top_n=4, final="fusion")
    assert fused["rerank"]["final"] == "fusion"  # type: ignore[index]
    fused_finals = [r["scores"]["final"] for r in fused["results"]]  # type: ignore[attr-defined]
    assert all(0 < f <= 1 for f in fused_finals)
    assert fused_finals == sorted(fused_finals, reverse=True)
    assert fused["results"][0]["document_id"] == "photosynthesis"  # type: ignore[index]
    off = _query(stack, rerank=False, top_n=2)
    assert off["rerank"]["status"] == "skipped"  # type: ignore[index]
    assert all(r["scores"]["rerank"] is None for r in off["results"])  # type: ignore[attr-defined]
    for mode in ("dense", "sparse"):
        out = _query(stack, mode=mode, rerank=False)
        leg = [r["scores"][mode] for r in out["results"]]  # type: ignore[attr-defined]
        assert all(v is not None for v in leg)


def test_bad_input_is_a_clear_4xx(stack: Stack) -> None:
    with stack.client() as c:
        cases = [
            ("/v1/collections/kb/query", {"query": "   "}, 422),
            ("/v1/collections/kb/query", {"query": "x", "top_k": 5, "top_n": 6}, 400),
            ("/v1/collections/nope/query", {"query": "x"}, 404),
            ("/v1/collections/kb/query", {"query": "x", "rerank_model": "no/such-model"}, 400),
            ("/v1/collections/kb/query", {"query": "x", "top_k": 501}, 422),
            ("/v1/collections/kb/query", {"query": "x", "mode": "fuzzy"}, 422),
        ]
        for path, body, status in cases:
            resp = c.post(path, json=body)
            assert resp.status_code == status, (body, resp.text)
            assert {"code", "message", "request_id"} <= set(resp.json()["error"])


def test_query_over_several_collections_and_model_list(stack: Stack) -> None:
    with stack.client() as c:
        resp = c.post("/v1/query", json={"query": QUERY, "collections": ["kb", "kb2"]})
        assert resp.status_code == 200, resp.text
        hits = resp.json()["results"]
        assert {h["collection"] for h in hits} == {"kb", "kb2"}
        ids = {m["id"] for m in c.get("/v1/models").json()["data"]}
        assert {"BAAI/bge-small-en-v1.5", "cross-encoder/ms-marco-MiniLM-L-12-v2"} <= ids


def test_rerank_failures_degrade_visibly_or_fail_closed(stack: Stack) -> None:
    # Every query here is new: a cached score would spare the failing hub the call.
    fresh = iter(f"{QUERY} (failure case {n})" for n in range(100))
    stack.plan.fail_next(1, 429, "rerank")
    recovered = _query(stack, query=next(fresh))
    assert recovered["rerank"]["status"] == "ok"  # type: ignore[index]
    stack.plan.fail_next(2, 500, "rerank")
    failed = _query(stack, query=next(fresh))
    assert failed["rerank"]["status"] == "failed"  # type: ignore[index]
    assert failed["rerank"]["reason"]  # type: ignore[index]
    assert all(r["scores"]["rerank"] is None for r in failed["results"])  # type: ignore[attr-defined]
    recall_order = [r["scores"]["fused"] for r in failed["results"]]  # type: ignore[attr-defined]
    assert recall_order == sorted(recall_order, reverse=True)
    stack.plan.hang_next(2, 5.0)
    slow = _query(stack, query=next(fresh))
    assert slow["rerank"]["status"] == "timeout"  # type: ignore[index]
    stack.plan.fail_next(2, 503, "rerank")
    assert _query(stack, query=next(fresh))["rerank"]["status"] == "failed"  # type: ignore[index]
    # Three failed queries in a row: the breaker is open, the hub is not even asked.
    before = stack.plan.forwarded.get("rerank", 0)
    tripped = _query(stack, query=next(fresh))
    assert tripped["rerank"]["status"] == "circuit_open"  # type: ignore[index]
    assert stack.plan.forwarded.get("rerank", 0) == before
    with stack.client() as c:
        closed = c.post(
            "/v1/collections/kb/query", json={"query": next(fresh), "on_rerank_error": "fail"}
        )
        assert closed.status_code == 503
        assert closed.json()["error"]["code"] == "rerank_circuit_open"
    time.sleep(2.5)
    assert _query(stack, query=next(fresh))["rerank"]["status"] == "ok"  # type: ignore[index]


def test_readiness_and_metrics(stack: Stack) -> None:
    with stack.client() as c:
        ready = c.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"redis": True, "store": True, "hub": True}
        _query(stack)
        missing = c.get("/v1/collections/no-such-collection", headers={"X-Request-Id": "rid-42"})
        assert missing.status_code == 404
        assert missing.headers["x-request-id"] == "rid-42"
        assert missing.headers["x-content-type-options"] == "nosniff"
        assert missing.json()["error"]["request_id"] == "rid-42"
        text = c.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}).text
    # Each answer counted by method, route template (never the raw path) and status.
    assert (
        'sieve_http_requests_total{method="POST",route="/v1/collections/{name}/query",status="200"}'
        in text
    )
    assert 'route="/v1/collections/{name}",status="404"' in text
    assert "no-such-collection" not in text
    assert 'sieve_query_stage_seconds_count{stage="rerank"}' in text
    assert 'sieve_rerank_status_total{status="ok"}' in text
    assert 'sieve_queue_depth{queue="ingest"}' in text
    assert 'sieve_documents{state="indexed"}' in text
    assert 'sieve_hub_request_seconds_count{endpoint="embeddings"}' in text
    ticks = next(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "sieve_event_loop_lag_seconds_count"
    )
    assert ticks > 0  # the loop-lag probe runs from the start


def test_rerank_depth_and_the_score_cache(stack: Stack) -> None:
    query = "which drink is brewed from roasted beans"
    first = _query(stack, query=query, top_n=4, rerank_depth=2, final="rerank")
    report = first["rerank"]
    assert isinstance(report, dict)
    assert (report["status"], report["depth"], report["requested_depth"], report["cached"]) == (
        "ok",
        2,
        2,
        0,
    )
    results = first["results"]
    assert isinstance(results, list)
    assert [r["scores"]["rerank"] is None for r in results] == [False, False, True, True]
    deeper = _query(stack, query=query, top_n=4, rerank_depth=4)
    assert (deeper["rerank"]["depth"], deeper["rerank"]["cached"]) == (4, 2)  # type: ignore[index]
    before = stack.plan.forwarded.get("rerank", 0)
    again = _query(stack, query=query, top_n=4, rerank_depth=4)
    assert again["rerank"]["cached"] == 4  # type: ignore[index]
    assert stack.plan.forwarded.get("rerank", 0) == before  # the hub was not asked
    same = [r["scores"]["rerank"] for r in again["results"]]  # type: ignore[attr-defined]
    assert same == [r["scores"]["rerank"] for r in deeper["results"]]  # type: ignore[attr-defined]
    off = _query(stack, query=query, rerank_depth=0)
    assert (off["rerank"]["status"], off["rerank"]["reason"]) == ("skipped", "rerank_depth is 0")  # type: ignore[index]
    with stack.client() as c:
        too_deep = c.post(
            "/v1/collections/kb/query", json={"query": query, "top_k": 3, "rerank_depth": 4}
        )
        assert too_deep.status_code == 400
        assert "rerank_depth" in too_deep.json()["error"]["message"]


def test_autocut_cuts_at_the_score_jump(stack: Stack) -> None:
    out = _query(stack, top_n=4, min_score=0.0, final="rerank", autocut=1)
    report = out["rerank"]
    results = out["results"]
    assert isinstance(report, dict)
    assert isinstance(results, list)
    assert report["autocut"] == 1
    assert 1 <= len(results) < 4
    assert len(results) + report["dropped_by_autocut"] == 4
    assert results[0]["document_id"] == "photosynthesis"


def test_a_stored_policy_is_shown_and_used_and_requests_still_win(stack: Stack) -> None:
    with stack.client() as c:
        put = c.put("/v1/collections/kb/policy", json={"rerank_depth": 1, "final": "rerank"})
        assert put.status_code == 200, put.text
        shown = c.get("/v1/collections/kb").json()["policy"]
        assert (shown["rerank_depth"], shown["final"]) == (1, "rerank")
        assert c.get("/v1/collections/kb/policy").json()["policy"]["rerank_depth"] == 1
        out = c.post("/v1/collections/kb/query", json={"query": QUERY}).json()
        assert (out["rerank"]["depth"], out["rerank"]["final"]) == (1, "rerank")
        over = c.post("/v1/collections/kb/query", json={"query": QUERY, "rerank_depth": 3})
        assert over.json()["rerank"]["depth"] == 3
        for bad in ({"rerank_depth": -1}, {"no_such_knob": 1}, {"final": "magic"}):
            resp = c.put("/v1/collections/kb/policy", json=bad)
            assert resp.status_code == 422, bad
        assert c.put("/v1/collections/nope/policy", json={}).status_code == 404
        cleared = c.delete("/v1/collections/kb/policy")
        assert cleared.status_code == 200
        assert c.get("/v1/collections/kb").json()["policy"] is None
        out = c.post("/v1/collections/kb/query", json={"query": QUERY}).json()
        assert out["rerank"]["final"] == "window"


def test_feedback_is_stored_per_pair_and_listed(stack: Stack) -> None:
    with stack.client() as c:
        url = "/v1/collections/kb2/feedback"
        body = {"query": "what absorbs light", "document_id": "chlorophyll", "relevant": True}
        first = c.post(url, json=body)
        assert first.status_code == 201, first.text
        assert first.json()["count"] == 1
        # The same pair judged again overwrites; another pair adds.
        assert c.post(url, json={**body, "relevant": False}).json()["count"] == 1
        other = {**body, "document_id": "espresso"}
        assert c.post(url, json=other).json()["count"] == 2
        listed = c.get(url).json()
        assert listed["count"] == 2
        by_doc = {j["document_id"]: j["relevant"] for j in listed["judgments"]}
        assert by_doc == {"chlorophyll": False, "espresso": True}
        assert c.post("/v1/collections/nope/feedback", json=body).status_code == 404
        assert c.post(url, json={**body, "query": "  "}).status_code == 422
        assert c.post(url, json={"query": "x"}).status_code == 422


def test_a_query_longer_than_the_models_pairs_is_cut_not_failed(stack: Stack) -> None:
    # The local cross-encoder's pairs hold 512 tokens (its hub says max_model_len 512): a
    # 700-word query was refused ("leaving no room for a document") and the stage failed.
    long_query = (
        QUERY
        + " "
        + " ".join(
            f"photosynthesis chlorophyll glucose oxygen light energy {i}" for i in range(120)
        )
    )
    out = _query(stack, query=long_query, top_n=3, final="rerank")
    rerank = out["rerank"]
    assert isinstance(rerank, dict)
    assert rerank["status"] == "ok", rerank
    assert rerank["query_truncated"] is True
    assert "query was cut" in str(rerank["reason"])
    results = out["results"]
    assert isinstance(results, list)
    assert results[0]["document_id"] == "photosynthesis"
    assert results[0]["scores"]["rerank"] is not None
    short = _query(stack, top_n=3)["rerank"]
    assert isinstance(short, dict)
    assert short["query_truncated"] is False
    with stack.client() as c:
        text = c.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}).text
    counted = [line for line in text.splitlines() if line.startswith("sieve_rerank_query_trunc")]
    assert counted, text[:2000]
    assert float(counted[0].split()[-1]) >= 1


def test_explain_says_where_each_document_went(stack: Stack) -> None:
    out = _query(stack, top_n=1, final="rerank", explain_documents=["espresso", "not-a-document"])
    explained = out["explain"]
    assert isinstance(explained, list)
    traces = {t["document_id"]: t for t in explained}
    assert traces["photosynthesis"]["outcome"] == "returned"
    assert traces["photosynthesis"]["final_rank"] == 1
    assert traces["photosynthesis"]["reranked"] is True
    espresso = traces["espresso"]
    assert espresso["outcome"] == "below_top_n"
    assert espresso["recall_rank"] is not None
    assert espresso["rerank_score"] is not None
    assert traces["not-a-document"]["outcome"] == "not_recalled"
    assert _query(stack, top_n=1)["explain"] is None
