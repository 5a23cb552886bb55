"""``sieve query``'s pure parts: the request body, snippets, and the rerank status line."""

from __future__ import annotations

from typing import Any

from services.api.schemas_query import QueryResponse
from services.cli.query_cmd import FinalScore, Mode, query_body, rerank_line, snippet


def test_body_leaves_unset_options_to_the_server() -> None:
    assert query_body("q") == {"query": "q", "mode": "hybrid", "rerank": True}
    assert query_body(
        "q",
        top_n=3,
        top_k=50,
        min_score=0.0,
        mode=Mode.SPARSE,
        rerank=False,
        final=FinalScore.FUSION,
    ) == {
        "query": "q",
        "mode": "sparse",
        "rerank": False,
        "top_n": 3,
        "top_k": 50,
        "min_score": 0.0,
        "final": "fusion",
    }


def test_snippet_collapses_whitespace_and_cuts_at_the_width() -> None:
    assert snippet("  a\n\n b\tc  ") == "a b c"
    long = "word " * 50
    cut = snippet(long)
    assert len(cut) <= 100
    assert cut.endswith("…")
    assert snippet("x" * 100) == "x" * 100


def _response(rerank: dict[str, Any]) -> QueryResponse:
    return QueryResponse.model_validate(
        {
            "query": "q",
            "results": [],
            "rerank": {
                "reason": None,
                "model": "BAAI/bge-reranker-base",
                "candidates": 20,
                "dropped_by_cutoff": 3,
                "min_score": 0.2,
                "final": "rerank",
                **rerank,
            },
            "timings_ms": {"embed": 4.2, "recall": 7.9, "rerank": 80.1, "total": 93.0},
            "usage": {},
        }
    )


def test_ok_rerank_line_has_model_cutoff_policy_and_timings() -> None:
    line, alert = rerank_line(_response({"status": "ok"}))
    assert alert is False
    assert line == (
        "rerank ok · BAAI/bge-reranker-base · 20 candidates, 3 below min score 0.2 · "
        "final score: rerank · 93 ms (embed 4, recall 8, rerank 80)"
    )


def test_a_rerank_that_did_not_happen_is_loud_with_its_reason() -> None:
    line, alert = rerank_line(
        _response(
            {"status": "timeout", "reason": "no answer in 3s", "final": "fusion", "min_score": None}
        )
    )
    assert alert is True
    assert line.startswith("rerank TIMEOUT · no answer in 3s · ")
    assert "final score: fusion" in line
    assert "below min score" not in line
