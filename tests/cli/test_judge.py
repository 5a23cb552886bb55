"""``sieve tune --judge``: a stand-in judge model over real HTTP labels cached candidates.

The candidates are synthetic (like ``test_tuning``'s, cheap): 30 chunks a query, one or two
relevant documents somewhere in recall's top 15, and a reranker that is either informative
(scores the relevant ones high, with overlap) or wrong (scores them low). The stand-in
judge grades from the true qrels with 15 % of its grades replaced at random; tune chooses
on the judge's grades and the held-out half is scored against the true qrels.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from services.cli.judge import (
    JudgeClient,
    JudgeUnavailable,
    first_stage_plan,
    judge_candidates,
    pair_tokens,
    parse_grade,
    sample_pairs,
)
from services.cli.tune_cmd import choose, load_queries
from services.cli.tuning import QueryCandidates
from tests.cli.standin_judge import StandInJudge, running_judge
from tests.servers import free_port

_PASSAGE = re.compile(r"Passage (\S+):")


def _corpus(
    n: int, *, reranker: str, seed: int = 7
) -> tuple[list[QueryCandidates], dict[str, dict[str, int]]]:
    rng = random.Random(seed)
    items, qrels = [], {}
    for i in range(n):
        qid = f"q{i}"
        chunks = [f"{qid}-c{j}" for j in range(30)]
        relevant = set(rng.sample(chunks, rng.choice((1, 2))))
        others = [c for c in chunks if c not in relevant]

        def order(top: int, others: list[str] = others, relevant: set[str] = relevant) -> list[str]:
            out = rng.sample(others, len(others))
            for c in relevant:
                out.insert(rng.randrange(1, top), c)
            return out

        dense, sparse = order(15), order(20)
        if reranker == "informative":
            rerank = {c: (0.6 + 0.4 * rng.random()) if c in relevant else 0.7 * rng.random()
                      for c in chunks}  # fmt: skip
        else:
            rerank = {c: 0.2 * rng.random() if c in relevant else 0.3 + 0.7 * rng.random()
                      for c in chunks}  # fmt: skip
        documents = {c: c.replace("-c", "-d") for c in chunks}
        items.append(
            QueryCandidates(
                qid=qid,
                query=f"query {qid}",
                dense=[(c, 1.0 - k / 30) for k, c in enumerate(dense)],
                sparse=[(c, 10.0 - k / 3) for k, c in enumerate(sparse)],
                documents=documents,
                rerank=rerank,
                late={},
                doc_tokens=dict.fromkeys(chunks, 60),
                query_tokens=3,
                base_ms=10.0,
                rerank_ms=300.0,
                rerank_pairs=30,
                rerank_cached=0,
                texts={c: f"Passage {documents[c]}: some words about topic {i}." for c in chunks},
            )
        )
        qrels[qid] = {documents[c]: 1 for c in relevant}
    return items, qrels


def _truth(qrels: dict[str, dict[str, int]]) -> StandInJudge:
    def grade(query: str, passage: str) -> int:
        qid = query.removeprefix("query ")
        match = _PASSAGE.match(passage)
        doc = match.group(1) if match else ""
        if qrels.get(qid, {}).get(doc, 0) > 0:
            return 3
        return 1 if int(doc.rsplit("d", 1)[-1]) % 3 == 0 else 0  # some related, most not

    return StandInJudge(truth=grade, noise=0.15)


def _tune(
    items: list[QueryCandidates], qrels: dict[str, dict[str, int]], tmp: Path
) -> tuple[dict[str, float], dict[str, object], bool]:
    judge = _truth(qrels)
    with running_judge(judge) as url, JudgeClient(url, "judge-llm") as client:
        report = judge_candidates(
            items,
            client,
            recall=first_stage_plan(),
            depth=10,
            budget_tokens=10_000_000,
            cache=tmp / "judge.jsonl",
            reference=qrels,
        )
    choice = choose(
        items, report.qrels, folds=5, holdout=0.5, seed=13, fetch_depth=10, reference=qrels
    )
    held = choice.report["held_out"]["offline_against_qrels"]
    return held, report.to_json(), choice.kept_default


def test_judge_labels_let_an_informative_reranker_through(tmp_path: Path) -> None:
    items, qrels = _corpus(30, reranker="informative")
    held, judge, _ = _tune(items, qrels, tmp_path)
    assert judge["unparseable"] == 0
    agreement = judge["agreement_with_reranker"]
    assert isinstance(agreement, dict)
    # The relevant ones above the rest; among the rest (grades 0 and 1) it has no opinion.
    assert agreement["pairwise"] > 0.55
    assert agreement["kendall_tau"] > 0.1
    grades = judge["grades"]
    assert isinstance(grades, dict)
    assert grades["3"] > 0
    assert grades["0"] > grades["3"]
    # Scored against the true qrels on queries tune never saw: well above recall.
    assert held["chosen"] >= held["hybrid"] + 0.10, held


def test_judge_labels_keep_recall_with_a_wrong_reranker(tmp_path: Path) -> None:
    items, qrels = _corpus(30, reranker="wrong")
    held, judge, kept_default = _tune(items, qrels, tmp_path)
    agreement = judge["agreement_with_reranker"]
    assert isinstance(agreement, dict)
    assert agreement["pairwise"] < 0.45
    assert agreement["kendall_tau"] < 0.0
    # Tune never ends below the untuned default, and lands within 0.005 of recall unless
    # it kept a default that is itself below recall (the default's own rule, not tune's).
    assert held["chosen"] >= held["default"] - 0.005, held
    if not (kept_default and held["default"] < held["hybrid"] - 0.005):
        assert held["chosen"] >= held["hybrid"] - 0.005, held


def test_the_budget_admits_whole_queries_and_the_cache_makes_reruns_free(tmp_path: Path) -> None:
    items, qrels = _corpus(12, reranker="informative")
    recall = first_stage_plan()
    per_query = [
        sum(pair_tokens(p.query, p.passage) for p in sample_pairs(q, recall, depth=10))
        for q in items
    ]
    budget = sum(per_query[:5]) + per_query[5] // 2  # five queries and half of the sixth
    judge = _truth(qrels)
    cache = tmp_path / "judge.jsonl"
    with running_judge(judge) as url, JudgeClient(url, "judge-llm") as client:
        first = judge_candidates(
            items, client, recall=recall, depth=10,
            budget_tokens=budget, cache=cache,
        )  # fmt: skip
        assert first.queries_judged == 5
        assert first.queries_over_budget == 7
        assert first.estimated_tokens <= budget
        assert judge.requests == first.sent == first.pairs > 0
        # What the stand-in reports using is within the (pessimistic) estimate.
        assert 0 < first.reported_tokens <= first.estimated_tokens
        again = judge_candidates(
            items[:5], client, recall=recall, depth=10,
            budget_tokens=1, cache=cache,
        )  # fmt: skip
        assert (again.sent, again.cached, again.queries_over_budget) == (0, first.pairs, 0)
        assert again.qrels == first.qrels
        assert judge.requests == first.sent  # nothing sent the second time
    with running_judge(judge) as url, JudgeClient(url, "another-llm") as client:
        other = judge_candidates(
            items[:1], client, recall=recall, depth=10, budget_tokens=budget, cache=cache
        )
        assert other.sent == len(sample_pairs(items[0], recall, depth=10))  # keyed by model
    assert judge.models == {"judge-llm", "another-llm"}


def test_unparseable_answers_are_counted_never_guessed_and_retries_heal(tmp_path: Path) -> None:
    items, qrels = _corpus(6, reranker="informative")
    judge = _truth(qrels)
    judge.garbage = lambda q, p: p.startswith("Passage q0-")
    judge.fail_first = 2  # 503 + Retry-After: 0, twice
    recall = first_stage_plan()
    with running_judge(judge) as url, JudgeClient(url, "judge-llm", backoff_base_s=0.01) as client:
        report = judge_candidates(
            items, client, recall=recall, depth=10,
            budget_tokens=10_000_000, cache=tmp_path / "j.jsonl", concurrency=1,
        )  # fmt: skip
        assert judge.requests == report.sent + 2
        assert report.unparseable == len(sample_pairs(items[0], recall, depth=10))
        assert "q0" not in report.qrels  # none of its pairs could be read
        again = judge_candidates(
            items, client, recall=recall, depth=10,
            budget_tokens=10_000_000, cache=tmp_path / "j.jsonl",
        )  # fmt: skip
        assert (again.sent, again.unparseable) == (0, report.unparseable)


@pytest.mark.parametrize(
    ("answer", "grade"),
    [
        ("3", 3),
        (" 0\n", 0),
        ('{"grade": 2}', 2),
        ('{ "grade" : 1 }', 1),
        ("4", None),
        ("2.", None),
        ("Grade: 2", None),
        ('{"grade": "2"}', None),
        ("23", None),
        ("", None),
    ],
)
def test_grades_are_parsed_strictly(answer: str, grade: int | None) -> None:
    assert parse_grade(answer) == grade


def test_a_judge_that_is_down_is_one_clear_error() -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"
    with (
        JudgeClient(down, "m", api_key="secret-token", max_retries=1, backoff_base_s=0.01) as c,
        pytest.raises(JudgeUnavailable) as err,
    ):
        c.grade("q", "p")
    assert "unreachable" in str(err.value)
    assert "secret-token" not in str(err.value)
    assert "127.0.0.1" not in str(err.value)


def test_queries_come_from_lines_or_json_lines(tmp_path: Path) -> None:
    plain = tmp_path / "q.txt"
    plain.write_text("what is espresso\n\n  why is the sky blue \n")
    assert sorted(load_queries(plain).values()) == ["what is espresso", "why is the sky blue"]
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"_id": "7", "text": "a"}\n{"query": "b"}\n')
    loaded = load_queries(jsonl)
    assert loaded["7"] == "a"
    assert "b" in loaded.values()
    jsonl.write_text('{"_id": "7"}\n')
    with pytest.raises(ValueError, match="line 1"):
        load_queries(jsonl)


def test_a_queries_file_needs_a_judge_and_a_down_judge_is_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner  # noqa: PLC0415

    from services.cli.main import app  # noqa: PLC0415

    queries = tmp_path / "q.txt"
    queries.write_text("what is espresso\n")
    down = f"http://127.0.0.1:{free_port()}"
    runner = CliRunner()
    alone = runner.invoke(app, ["tune", "-c", "c", "--queries", str(queries), "--api-url", down])
    assert alone.exit_code == 2
    assert "--judge MODEL" in alone.output
    both = runner.invoke(
        app, ["tune", "-c", "c", "--queries", str(queries), "--feedback", "--judge", "m",
              "--api-url", down],
    )  # fmt: skip
    assert both.exit_code == 2
    logged = runner.invoke(app, ["tune", "-c", "c", "--from-query-log", "--api-url", down])
    assert logged.exit_code == 2  # the log holds queries, not judgments: a judge grades them
    assert "--from-query-log with --judge MODEL" in logged.output
    two = runner.invoke(
        app, ["tune", "-c", "c", "--queries", str(queries), "--from-query-log", "--judge", "m",
              "--api-url", down],
    )  # fmt: skip
    assert two.exit_code == 2
