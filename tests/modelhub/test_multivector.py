"""The late-interaction encoder over real HTTP: the multivector shape, its errors, and that
MaxSim over its token vectors ranks the relevant passage above the distractors."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from retriever.multivector import maxsim
from services.modelhub.late_models import OnnxTokenEncoder
from services.modelhub.registry import BUNDLED_EMBED_ID, BUNDLED_LATE_ID, LoadedModel
from tests.modelhub.test_relevance import CASES


def _tokens(client: httpx.Client, texts: list[str], **extra: object) -> list[np.ndarray]:
    response = client.post(
        "/v1/embeddings",
        json={"model": BUNDLED_LATE_ID, "input": texts, "return_multivector": True, **extra},
    )
    assert response.status_code == 200, response.text
    data = sorted(response.json()["data"], key=lambda d: d["index"])
    return [np.array(d["embedding"], dtype=np.float32) for d in data]


def test_models_lists_the_token_encoder(client: httpx.Client) -> None:
    cards = {c["id"]: c for c in client.get("/v1/models").json()["data"]}
    card = cards[BUNDLED_LATE_ID]
    assert card["capabilities"] == ["multivector"]
    assert card["dimensions"] == 384
    assert "MaxSim" in card["notes"]


def test_one_unit_vector_per_token(
    client: httpx.Client, loaded_models: dict[str, LoadedModel]
) -> None:
    texts = ["a short text", "a rather longer text with quite a few more words in it"]
    response = client.post(
        "/v1/embeddings",
        json={"model": BUNDLED_LATE_ID, "input": texts, "return_multivector": True},
    )
    body = response.json()
    model = loaded_models[BUNDLED_LATE_ID]
    assert isinstance(model, OnnxTokenEncoder)
    counts = [len(model.tokenizer.encode(t).ids) for t in texts]  # [CLS] ... [SEP]
    matrices = [np.array(d["embedding"]) for d in body["data"]]
    assert [m.shape for m in matrices] == [(n, 384) for n in counts]
    assert [d["shape"] for d in body["data"]] == [[n, 384] for n in counts]
    for m in matrices:
        assert np.allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)
    assert body["usage"]["prompt_tokens"] == sum(counts)
    # Padding in a shared batch does not change a text's vectors (INT8: a small tolerance).
    alone = _tokens(client, texts[:1])[0]
    assert float(np.mean(np.sum(alone * matrices[0], axis=1))) > 0.98


def test_base64_is_the_row_major_float32_matrix(client: httpx.Client) -> None:
    floats = _tokens(client, ["base64 round trip"])[0]
    response = client.post(
        "/v1/embeddings",
        json={
            "model": BUNDLED_LATE_ID,
            "input": ["base64 round trip"],
            "return_multivector": True,
            "encoding_format": "base64",
        },
    )
    raw = base64.b64decode(response.json()["data"][0]["embedding"])
    matrix = np.frombuffer(raw, dtype="<f4").reshape(-1, 384)
    assert np.allclose(matrix, floats, atol=1e-6)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": BUNDLED_LATE_ID, "input": ["x"]}, "return_multivector"),
        (
            {"model": BUNDLED_EMBED_ID, "input": ["x"], "return_multivector": True},
            "return_multivector",
        ),
        (
            {
                "model": BUNDLED_LATE_ID,
                "input": ["x"],
                "return_multivector": True,
                "dimensions": 128,
            },
            "dimensions",
        ),
        ({"model": BUNDLED_LATE_ID, "input": [], "return_multivector": True}, "input"),
    ],
)
def test_misuse_is_a_clear_400(client: httpx.Client, body: dict[str, object], param: str) -> None:
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_unknown_model_is_404(client: httpx.Client) -> None:
    response = client.post(
        "/v1/embeddings", json={"model": "nope/nope", "input": ["x"], "return_multivector": True}
    )
    assert response.status_code == 404


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_maxsim_ranks_the_relevant_passage_first(
    client: httpx.Client, case: tuple[str, str, list[str]]
) -> None:
    query, relevant, distractors = case
    q, *passages = _tokens(client, [query, relevant, *distractors])
    scores = [maxsim(q, p) for p in passages]
    assert int(np.argmax(scores)) == 0, (query, scores)
