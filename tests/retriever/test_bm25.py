"""BM25 encoding on qdrant_edge.Bm25: term frequencies for queries, avg_len for documents."""

from __future__ import annotations

import pytest
from qdrant_edge import Bm25, Bm25Config

from retriever.bm25 import DEFAULT_AVG_LEN, Bm25Encoder, mean_token_length


def _weights(vec_indices: list[int], values: list[float]) -> dict[int, float]:
    return dict(zip(vec_indices, values, strict=True))


def test_query_carries_term_frequencies() -> None:
    encoder = Bm25Encoder(avg_len=10)
    query = encoder.embed_query("zebra zebra zebra lion")
    assert sorted(query.values) == [1.0, 3.0]
    # Edge's own embed_query would give both terms 1.0; the terms are the same ones.
    edge = Bm25().embed_query("zebra zebra zebra lion")
    assert sorted(query.indices) == sorted(edge.indices)
    assert sorted(edge.values) == [1.0, 1.0]


def test_query_drops_stop_words_and_counts_stems_together() -> None:
    encoder = Bm25Encoder(avg_len=10)
    assert encoder.embed_query("run runs running").values == [3.0]  # one stem, three times
    assert len(encoder.embed_query("the running of the runners").indices) == 2
    assert encoder.embed_query("the and of").indices == []


def test_mean_token_length_counts_bm25_tokens() -> None:
    # "the" and "of" are stop words; "dogs" stems like "dog": counted, not deduplicated.
    assert mean_token_length(["the dogs of war", "dog dog dog cat"]) == pytest.approx(3.0)
    assert mean_token_length([]) == 0.0


def test_avg_len_changes_document_weights() -> None:
    text = "zebra zebra lion tiger"
    short = Bm25Encoder(avg_len=2).embed_documents([text])[0]
    fitted = Bm25Encoder(avg_len=mean_token_length([text])).embed_documents([text])[0]
    default = Bm25Encoder(avg_len=DEFAULT_AVG_LEN).embed_documents([text])[0]
    zebra = max(fitted.values)
    assert max(short.values) < zebra < max(default.values)
    # with avg_len equal to the document's length, BM25 gives tf*(k+1)/(tf+k) = 2*2.2/3.2
    assert zebra == pytest.approx(2 * 2.2 / 3.2, rel=1e-5)


def test_documents_match_edge_bm25_with_same_config() -> None:
    texts = ["alpha beta beta", "gamma delta epsilon zeta"]
    ours = Bm25Encoder(avg_len=3.5).embed_documents(texts)
    model = Bm25(Bm25Config(avg_len=3.5))
    for text, vec in zip(texts, ours, strict=True):
        ref = model.embed_document(text)
        assert _weights(vec.indices, vec.values) == _weights(ref.indices, ref.values)


def test_avg_len_must_be_positive() -> None:
    with pytest.raises(ValueError, match="avg_len"):
        Bm25Encoder(avg_len=0)
