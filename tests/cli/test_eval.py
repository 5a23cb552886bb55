"""`sieve eval`: metric plumbing (trec_eval via pytrec_eval) and a run against the real stack."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.settings import RerankSettings
from services.cli.evaluation import evaluate_runs, load_beir, ranked_documents
from services.cli.main import app
from tests.services.stack import KEY_A, KEY_B, Stack, running_stack

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "scifact"


def test_metrics_match_hand_computed_values() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d9": 1}}
    ranking = {"q1": ["d0", "d1"], "q2": []}
    m = evaluate_runs(qrels, ranking)
    # q1: relevant at rank 2; q2: nothing retrieved (counts as 0, not skipped).
    assert m["mrr@10"] == pytest.approx(0.5 / 2)
    assert m["ndcg@10"] == pytest.approx((1 / math.log2(3)) / 2)
    assert m["recall@100"] == pytest.approx(0.5)
    deep = {"q1": [f"x{i}" for i in range(10)] + ["d1"], "q2": []}
    assert evaluate_runs(qrels, deep)["mrr@10"] == 0.0  # rank 11 is outside MRR@10


def test_chunks_become_documents_and_the_query_id_is_dropped() -> None:
    hits = [{"document_id": d} for d in ("a", "q", "a", "b", "c", "b")]
    assert ranked_documents(hits, "q") == ["a", "b", "c"]


def _tiny_beir(root: Path, n_queries: int = 8, distractors: int = 40) -> Path:
    full = load_beir(SCIFACT)
    picked = list(full.queries.items())[:n_queries]
    wanted = {doc for qid, _ in picked for doc in full.qrels[qid]}
    lines: list[bytes] = []
    for line in (SCIFACT / "corpus.jsonl").read_bytes().splitlines():
        doc_id = json.loads(line)["_id"]
        if doc_id in wanted or (distractors > 0 and len(lines) < len(wanted) + distractors):
            lines.append(line)
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_bytes(b"\n".join(lines))
    (root / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": qid, "text": text}) for qid, text in picked)
    )
    rows = ["query-id\tcorpus-id\tscore"] + [
        f"{qid}\t{doc}\t{rel}" for qid, _ in picked for doc, rel in full.qrels[qid].items()
    ]
    (root / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def stack(
    redis_url: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(redis_url, hub_url, tmp_path_factory.mktemp("evalstack")) as handle:
        yield handle


@pytest.mark.slow
def test_eval_runs_every_configuration_through_the_api(stack: Stack, tmp_path: Path) -> None:
    dataset = _tiny_beir(tmp_path / "tiny")
    runner = CliRunner()
    args = ["eval", str(dataset), "--api-url", stack.api, "--api-key", KEY_A, "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["queries"] == 8
    configs = set(report["metrics"])
    assert {"dense", "sparse", "hybrid"} <= configs
    assert {
        "hybrid+rerank (window, default)",
        "hybrid+rerank (fusion)",
        "hybrid+rerank (rerank)",
    } <= configs
    for metrics in report["metrics"].values():
        assert 0.0 <= metrics["ndcg@10"] <= 1.0
    # With every relevant document in a small corpus, recall finds them.
    assert report["metrics"]["hybrid"]["recall@100"] == 1.0
    assert report["rerank_statuses"] == {"ok": 8}
    kept = [row["kept"] for row in report["min_score_sweep"]]
    assert kept == sorted(kept, reverse=True)
    assert report["latency_ms"]["rerank"]["p50"] > 0
    # The report is stored on the server for the console, exactly as printed.
    with stack.client() as c:
        stored = c.get(f"/v1/collections/{report['collection']}/evaluation")
        assert stored.status_code == 200, stored.text
        assert stored.json()["metrics"] == report["metrics"]
        assert stored.json()["saved_at"] > 0
    # A second run reuses the collection instead of ingesting again.
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    # BM25 is deterministic; the INT8 models may move slightly with batch composition.
    assert json.loads(again.stdout)["metrics"]["sparse"] == report["metrics"]["sparse"]


@pytest.mark.slow
def test_the_stored_report_is_validated_per_tenant_and_goes_with_its_collection(
    stack: Stack,
) -> None:
    report = {
        "collection": "evaluated",
        "queries": 1,
        "metrics": {"dense": {"ndcg@10": 0.5, "recall@100": 1.0, "mrr@10": 0.5}},
        "latency_ms": {"total": {"p50": 10.0, "p95": 12.0}},
        "min_score_sweep": [{"min_score": 0.0, "kept": 10, "relevant_kept": 1}],
    }
    with stack.client() as a, stack.client(KEY_B) as b:
        assert a.post("/v1/collections", json={"name": "evaluated"}).status_code == 201
        missing = a.get("/v1/collections/evaluated/evaluation")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "evaluation_not_found"
        assert a.put("/v1/collections/evaluated/evaluation", json={"queries": 1}).status_code == 422
        assert a.put("/v1/collections/evaluated/evaluation", json=report).status_code == 200
        assert a.get("/v1/collections/evaluated/evaluation").json()["queries"] == 1
        # Another tenant neither reads nor writes it: the collection is not theirs.
        assert b.get("/v1/collections/evaluated/evaluation").status_code == 404
        assert b.put("/v1/collections/evaluated/evaluation", json=report).status_code == 404
        # Deleting the collection deletes its report; a new one by that name starts empty.
        assert a.delete("/v1/collections/evaluated").status_code == 204
        assert a.post("/v1/collections", json={"name": "evaluated"}).status_code == 201
        assert a.get("/v1/collections/evaluated/evaluation").status_code == 404


@pytest.mark.slow
def test_tune_chooses_applies_and_the_api_uses_the_policy(stack: Stack, tmp_path: Path) -> None:
    import httpx  # noqa: PLC0415

    dataset = _tiny_beir(tmp_path / "tiny")
    runner = CliRunner()
    conn = ["--api-url", stack.api, "--api-key", KEY_A]
    # The collection of the eval test above (ingested again if this test runs alone).
    assert runner.invoke(app, ["eval", str(dataset), *conn, "--limit", "1"]).exit_code == 0
    args = ["tune", str(dataset), "-c", "beir-tiny", "--folds", "2", "--holdout", "0.5"]
    args += ["--fetch-depth", "10", "--apply", "--json", *conn]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["queries"] == {"tuned": 4, "held_out": 4}
    assert report["frontier"]
    assert 0.0 <= report["cv_ndcg@10"] <= 1.0
    assert len(report["fold_choices"]) == 2
    assert 0.0 <= report["held_out"]["api"] <= 1.0
    headers = {"Authorization": f"Bearer {KEY_A}"}
    with httpx.Client(base_url=stack.api, headers=headers, timeout=60) as c:
        shown = c.get("/v1/collections/beir-tiny").json()["policy"]
        out = c.post("/v1/collections/beir-tiny/query", json={"query": "cancer"}).json()
        if report["kept_default"]:  # tuning did not beat the default out of sample
            assert report["cv_ndcg@10"] <= report["default_ndcg@10"]
            assert shown is None
            assert report["applied"] is None
            assert out["rerank"]["requested_depth"] == RerankSettings().depth
        else:
            assert report["cv_ndcg@10"] > report["default_ndcg@10"]
            assert shown["provenance"]["by"] == "sieve tune"
            assert shown["rerank_depth"] == report["applied"]["rerank_depth"]
            assert out["rerank"]["requested_depth"] == shown["rerank_depth"]
        # Feedback instead of a file: judge the relevant documents of four queries.
        data = load_beir(dataset)
        for qid, text in list(data.queries.items())[:4]:
            for doc in data.qrels[qid]:
                body = {"query": text, "document_id": doc, "relevant": True}
                assert c.post("/v1/collections/beir-tiny/feedback", json=body).status_code == 201
    fb = runner.invoke(app, ["tune", "-c", "beir-tiny", "--feedback", "--folds", "2",
                             "--fetch-depth", "10", "--json", *conn])  # fmt: skip
    assert fb.exit_code == 0, fb.output
    assert json.loads(fb.stdout)["queries"]["tuned"] == 4


@pytest.mark.slow
def test_tune_with_a_judge_model_on_a_queries_file(stack: Stack, tmp_path: Path) -> None:
    from tests.cli.standin_judge import StandInJudge, running_judge  # noqa: PLC0415

    dataset = _tiny_beir(tmp_path / "tiny")
    data = load_beir(dataset)
    runner = CliRunner()
    conn = ["--api-url", stack.api, "--api-key", KEY_A]
    # The collection of the eval test above (ingested again if this test runs alone).
    assert runner.invoke(app, ["eval", str(dataset), *conn, "--limit", "1"]).exit_code == 0
    bodies = {}
    for line in (dataset / "corpus.jsonl").read_text().splitlines():
        row = json.loads(line)
        bodies[row["_id"]] = f"{row.get('title', '')}\n{row['text']}"
    by_text = {text: qid for qid, text in data.queries.items()}

    def truth(query: str, passage: str) -> int:
        head = passage.split("\n", 1)[-1][:80]
        relevant = data.qrels.get(by_text.get(query, ""), {})
        return 3 if any(head in bodies[d] for d in relevant if d in bodies) else 0

    judge = StandInJudge(truth=truth)
    queries = tmp_path / "queries.txt"
    queries.write_text("\n".join(data.queries.values()) + "\n")
    with running_judge(judge) as url:
        args = ["tune", "-c", "beir-tiny", "--queries", str(queries), "--judge", "standin",
                "--judge-url", url, "--folds", "2", "--fetch-depth", "10", "--judge-depth", "5",
                "--cache", str(tmp_path / "cands.jsonl"), "--json", *conn]  # fmt: skip
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.output
        report = json.loads(first.stdout)
        sent = judge.requests
        again = runner.invoke(app, args)
        assert again.exit_code == 0, again.output
        rerun = json.loads(again.stdout)
    assert report["judge"]["sent"] == sent > 0
    assert report["judge"]["unparseable"] == 0
    assert report["judge"]["grades"]["3"] > 0
    assert report["queries"]["tuned"] >= 2
    assert (tmp_path / "cands.judge.jsonl").is_file()  # beside --cache
    assert judge.requests == sent  # the re-run was answered from the cache
    assert rerun["judge"]["sent"] == 0
    assert rerun["judge"]["cached"] == report["judge"]["pairs"]
    assert rerun["cv_ndcg@10"] == report["cv_ndcg@10"]


@pytest.mark.slow
def test_tune_with_a_judge_on_the_collections_query_log(stack: Stack, tmp_path: Path) -> None:
    """No hand labels and no query file: the queries are those users sent, as logged."""
    import httpx  # noqa: PLC0415

    from tests.cli.standin_judge import StandInJudge, running_judge  # noqa: PLC0415

    dataset = _tiny_beir(tmp_path / "tiny")
    data = load_beir(dataset)
    runner = CliRunner()
    conn = ["--api-url", stack.api, "--api-key", KEY_A]
    assert runner.invoke(app, ["eval", str(dataset), *conn, "--limit", "1"]).exit_code == 0
    empty = runner.invoke(app, ["tune", "-c", "beir-tiny", "--from-query-log", "--judge", "m",
                                *conn])  # fmt: skip
    assert empty.exit_code == 1  # the log is off: one line that says how to turn it on
    assert "holds no queries" in empty.output
    assert "sieve query-log enable -c beir-tiny" in empty.output
    on = runner.invoke(app, ["query-log", "enable", "-c", "beir-tiny", *conn])
    assert on.exit_code == 0, on.output
    assert "query log of beir-tiny on: 1 of the queries" in on.stdout
    headers = {"Authorization": f"Bearer {KEY_A}"}
    texts = list(data.queries.values())
    with httpx.Client(base_url=stack.api, headers=headers, timeout=60) as c:
        # Users ask: the first six queries once, the first two of them once more each.
        for text in [*texts[:6], *texts[:2]]:
            resp = c.post("/v1/collections/beir-tiny/query", json={"query": text})
            assert resp.status_code == 200, resp.text
        deadline = time.monotonic() + 10
        while c.get("/v1/collections/beir-tiny/query-log").json()["entries"] < 6:
            assert time.monotonic() < deadline, "the queries were never logged"
            time.sleep(0.05)
    shown = runner.invoke(app, ["query-log", "show", "-c", "beir-tiny", *conn])
    assert shown.exit_code == 0, shown.output
    assert "6 queries kept (sample 1" in shown.stdout
    bodies = {}
    for line in (dataset / "corpus.jsonl").read_text().splitlines():
        row = json.loads(line)
        bodies[row["_id"]] = f"{row.get('title', '')}\n{row['text']}"
    by_text = {text: qid for qid, text in data.queries.items()}
    judged: set[str] = set()

    def truth(query: str, passage: str) -> int:
        judged.add(query)
        head = passage.split("\n", 1)[-1][:80]
        relevant = data.qrels.get(by_text.get(query, ""), {})
        return 3 if any(head in bodies[d] for d in relevant if d in bodies) else 0

    judge = StandInJudge(truth=truth)
    try:
        with running_judge(judge) as url:
            args = ["tune", "-c", "beir-tiny", "--from-query-log", "--judge", "standin",
                    "--judge-url", url, "--folds", "2", "--fetch-depth", "10",
                    "--judge-depth", "5", "--json", *conn]  # fmt: skip
            every = runner.invoke(app, args)
            assert every.exit_code == 0, every.output
            report = json.loads(every.stdout)
            assert judged == set(texts[:6])  # exactly the logged queries
            with httpx.Client(base_url=stack.api, headers=headers, timeout=60) as c:
                counts = {
                    e["query"]: e["count"]
                    for e in c.get("/v1/collections/beir-tiny/query-log/entries").json()["entries"]
                }
            assert counts == {t: 2 if t in texts[:2] else 1 for t in texts[:6]}
            judged.clear()
            most = runner.invoke(app, [*args, "--max-queries", "3"])
            assert most.exit_code == 0, most.output
            assert json.loads(most.stdout)["queries"]["tuned"] <= 3
    finally:
        off = runner.invoke(app, ["query-log", "disable", "-c", "beir-tiny", *conn])
        assert off.exit_code == 0, off.output
    assert report["judge"]["sent"] > 0
    assert report["judge"]["grades"]["3"] > 0
    assert report["queries"]["tuned"] >= 2
    assert report["cv_ndcg@10"] >= 0.0
    # The two seen twice, then the most recently seen of the others: tune's own queries
    # (the log stayed on at rate 1 through both runs) were not logged.
    assert judged == {texts[0], texts[1], texts[5]}
    with httpx.Client(base_url=stack.api, headers=headers, timeout=60) as c:
        assert c.get("/v1/collections/beir-tiny/query-log").json()["enabled"] is False


def _late_favouring(root: Path, source: Path, cache: Path) -> tuple[Path, int]:
    """``source``'s queries with graded qrels that only late interaction ranks perfectly.

    From the candidates tune cached: a query's top ten documents under the grid's
    recall-only late plan (late weight 1) are graded 10, 9, ... 1, the query kept only
    where that order differs from hybrid recall's. That plan scores nDCG@10 1.0 on every
    judged query; a plan without late interaction would have to give the same ten
    documents in the same order. Returns the directory and the number of judged queries.
    """
    from core.settings import QuerySettings, RerankSettings  # noqa: PLC0415
    from query import rank, resolve_rank  # noqa: PLC0415
    from services.cli.tuning import candidate_grid, load_candidates  # noqa: PLC0415

    top_k = QuerySettings().top_k
    default = resolve_rank(None, QuerySettings(), RerankSettings(), top_k=30)
    grid = candidate_grid(replace(default, late_weight=0.0), late=True, depths=[10, 20, 30])
    late_plan = next(p for p in grid if p.late_weight == 1.0 and p.rerank_depth == 0)
    hybrid = replace(late_plan, late_weight=0.0)
    rows = ["query-id\tcorpus-id\tscore"]
    judged = 0
    for q in load_candidates(cache):
        orders = []
        for plan in (late_plan, hybrid):
            docs = [q.documents[c] for c in rank(plan, q.legs, top_k=top_k)]
            orders.append(list(dict.fromkeys(docs))[:10])
        if orders[0] != orders[1]:
            judged += 1
            rows += [f"{q.qid}\t{doc}\t{10 - n}" for n, doc in enumerate(orders[0])]
    (root / "qrels").mkdir(parents=True)
    (root / "queries.jsonl").write_bytes((source / "queries.jsonl").read_bytes())
    (root / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return root, judged


@pytest.mark.slow
def test_tune_scores_late_interaction_offline_and_apply_adds_the_stage(
    stack: Stack, hub_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collection without late interaction: tune encodes the fetched candidates with the
    hub's real late encoder, ranks late policies through query.rank, reuses the cached
    scores on a re-run, and --apply re-indexes the collection with the stage it chose."""
    import httpx  # noqa: PLC0415

    monkeypatch.setenv("SIEVE_MODEL_BASE_URL", hub_url)  # the CLI's encoder: the stack's hub
    dataset = _tiny_beir(tmp_path / "tiny", n_queries=16)
    runner = CliRunner()
    conn = ["--api-url", stack.api, "--api-key", KEY_A]
    made = runner.invoke(app, ["eval", str(dataset), "-c", "tunelate", *conn, "--limit", "1"])
    assert made.exit_code == 0, made.output
    cache = tmp_path / "cands.jsonl"
    args = ["-c", "tunelate", "--folds", "2", "--fetch-depth", "30", "--cache", str(cache)]
    first = runner.invoke(app, ["tune", str(dataset), *args, "--json", *conn])
    assert first.exit_code == 0, first.output
    late = json.loads(first.stdout)["late_interaction"]
    assert late["collection_has"] is False
    assert late["evaluated"] == "offline"
    assert {"cv_ndcg@10_with", "cv_ndcg@10_without"} <= set(late)
    cost = late["cost"]
    assert cost["encoded_this_run"] > 8  # the queries and their distinct candidate texts
    assert cost["tokens_per_chunk"] > 1
    assert cost["dim"] > 0
    assert cost["query_ms"] > 0

    favour, judged = _late_favouring(tmp_path / "favour", dataset, cache)
    assert judged >= 4, "too few queries whose order late interaction changes"
    args += ["--holdout", "0.5", "--apply", "--json", *conn]
    result = runner.invoke(app, ["tune", str(favour), *args])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    late = report["late_interaction"]
    assert late["cost"]["encoded_this_run"] == 0  # every score came from the cache
    assert late["cv_ndcg@10_with"] > late["cv_ndcg@10_without"]
    assert late["chosen_uses_late"] is True
    assert report["kept_default"] is False
    assert report["applied"]["late_weight"] > 0
    assert report["reindex"]["late_interaction"] is True
    assert report["reindex"]["state"] == "completed"
    headers = {"Authorization": f"Bearer {KEY_A}"}
    with httpx.Client(base_url=stack.api, headers=headers, timeout=60) as c:
        shown = c.get("/v1/collections/tunelate").json()
        assert shown["late_interaction"] is True
        assert shown["policy"]["late_weight"] == report["applied"]["late_weight"]
        job = c.get(f"/v1/jobs/{report['reindex']['job_id']}").json()
        assert job["kind"] == "reindex"
        assert job["state"] == "completed"
        out = c.post("/v1/collections/tunelate/query", json={"query": "cancer"}).json()
        assert out["results"][0]["scores"]["late"] is not None
    assert late["held_out_ndcg@10_with"] > late["held_out_ndcg@10_without"]
    # Through the API the stage rescores every recall hit, not only the fetched ones.
    assert 0.0 <= report["held_out"]["api"] <= 1.0
