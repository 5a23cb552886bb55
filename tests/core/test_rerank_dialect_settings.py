"""``SIEVE_RERANK_DIALECT`` and ``SIEVE_RERANK_MODEL_DIALECTS``: a dialect per model."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import RerankSettings


def test_the_default_dialect_and_a_per_model_map_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert RerankSettings().dialect_for("any/model") == "ionos"
    monkeypatch.setenv("SIEVE_RERANK_DIALECT", "vllm")
    monkeypatch.setenv("SIEVE_RERANK_MODEL_DIALECTS", '{"BAAI/bge-reranker-base": "tei"}')
    settings = RerankSettings()
    assert settings.dialect_for("BAAI/bge-reranker-base") == "tei"
    assert settings.dialect_for("Qwen/Qwen3-VL-Reranker-8B") == "vllm"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SIEVE_RERANK_DIALECT", "tie"),
        ("SIEVE_RERANK_MODEL_DIALECTS", '{"BAAI/bge-reranker-base": "tie"}'),
    ],
)
def test_an_unknown_dialect_refuses_to_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=f"{variable}: unknown rerank dialect 'tie'; known: "):
        RerankSettings()
