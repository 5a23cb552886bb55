"""Pair budgeting: text by estimate or an injected tokenizer, images by the formula."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reranker.budget import (
    PairBudget,
    estimate_tokens,
    fit_document,
    fit_query,
    fit_query_strictly,
    truncate_to_tokens,
)
from reranker.images import PreparedImage, prepare_image


def _words(text: str) -> int:
    """A stand-in tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def test_estimate_is_pessimistic_for_english_and_cjk() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abc") == 1
    assert estimate_tokens("abcd") == 2
    assert estimate_tokens("検索") == 2  # 6 UTF-8 bytes: a token per character


def test_truncate_keeps_text_that_fits() -> None:
    assert truncate_to_tokens("short text", 100) == "short text"


def test_truncate_with_an_injected_tokenizer() -> None:
    text = " ".join(f"w{i}" for i in range(50))
    cut = truncate_to_tokens(text, 10, _words)
    assert _words(cut) == 10
    assert text.startswith(cut)


def test_truncate_with_the_estimate_fits_the_limit() -> None:
    text = "lorem ipsum dolor sit amet " * 200
    cut = truncate_to_tokens(text, 50)
    assert estimate_tokens(cut) <= 50
    assert len(cut) > 120  # and it keeps most of what fits
    assert not cut.endswith(" ")


def test_truncate_to_zero_gives_empty() -> None:
    assert truncate_to_tokens("anything", 0) == ""


def test_pair_budget_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="overhead"):
        PairBudget(context_tokens=100, overhead_tokens=100)
    with pytest.raises(ValueError, match="share"):
        PairBudget(max_query_share=1.0)


def test_a_long_query_is_capped_to_its_share() -> None:
    budget = PairBudget(context_tokens=110, overhead_tokens=10, max_query_share=0.5)
    query, tokens = fit_query("word " * 200, budget, _words)
    assert tokens == _words(query) == 50


def test_document_text_is_truncated_to_what_the_query_leaves() -> None:
    budget = PairBudget(context_tokens=110, overhead_tokens=10)
    doc = fit_document("x " * 500, [], query_tokens=30, budget=budget, count=_words)
    assert _words(doc.text) == 70
    assert doc.text_truncated
    assert doc.image_uris == ()


def test_a_document_that_fits_is_untouched() -> None:
    doc = fit_document("a short passage", [], query_tokens=5, budget=PairBudget())
    assert doc.text == "a short passage"
    assert not doc.text_truncated


def _image(width: int, height: int) -> PreparedImage:
    return PreparedImage("data:image/png;base64,AAAA", width, height)


def test_images_are_counted_by_the_formula_and_text_gets_the_rest() -> None:
    budget = PairBudget(context_tokens=32_768, overhead_tokens=200)
    # Two 928x1376 images (the 1296x1936 example after scaling) cost 1,247 tokens each.
    images = [_image(928, 1376), _image(928, 1376)]
    doc = fit_document("t " * 40_000, images, query_tokens=68, budget=budget, count=_words)
    assert doc.image_tokens == 2 * 1247
    assert _words(doc.text) == 32_768 - 200 - 68 - 2 * 1247
    assert doc.images_dropped == 0


def test_the_guide_says_about_25_large_images_fit_one_pair() -> None:
    budget = PairBudget(context_tokens=32_768, overhead_tokens=200)
    images = [_image(928, 1376)] * 30
    doc = fit_document("", images, query_tokens=0, budget=budget)
    assert doc.image_count == 26  # 26 x 1,247 = 32,422 <= 32,568
    assert doc.images_dropped == 4


def test_fit_document_with_real_prepared_images(make_image: Callable[..., bytes]) -> None:
    image = prepare_image(make_image(1296, 1936))
    doc = fit_document("caption", [image], query_tokens=10, budget=PairBudget())
    assert doc.image_tokens == 1247
    assert doc.image_uris == (image.data_uri,)


def test_the_per_document_cap_cuts_the_text_on_the_client() -> None:
    budget = PairBudget(context_tokens=1000, overhead_tokens=10, max_document_tokens=40)
    doc = fit_document("x " * 500, [], query_tokens=30, budget=budget, count=_words)
    assert _words(doc.text) == 40
    assert doc.text_truncated
    short = fit_document("a b c", [], query_tokens=30, budget=budget, count=_words)
    assert not short.text_truncated


def test_the_cap_never_raises_the_room_the_context_leaves() -> None:
    budget = PairBudget(context_tokens=110, overhead_tokens=10, max_document_tokens=500)
    doc = fit_document("x " * 500, [], query_tokens=30, budget=budget, count=_words)
    assert _words(doc.text) == 70


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_document_tokens"):
        PairBudget(max_document_tokens=0)


def test_the_models_own_context_caps_the_query_not_the_documents() -> None:
    wide = PairBudget(context_tokens=32_768, max_document_tokens=512)
    small = PairBudget(context_tokens=32_768, max_document_tokens=512, model_context_tokens=512)
    long_query = "word " * 1000
    assert fit_query(long_query, wide, _words)[1] == 1000  # within 16k: kept whole
    fitted, tokens = fit_query(long_query, small, _words)
    assert tokens == 256  # half of the model's 512
    assert long_query.startswith(fitted)  # the head is kept
    doc = fit_document("word " * 400, [], query_tokens=tokens, budget=small, count=_words)
    assert not doc.text_truncated  # the hub cuts documents with its own tokenizer


def test_the_strict_fit_counts_a_token_per_byte() -> None:
    budget = PairBudget(model_context_tokens=100, max_query_share=0.5)
    symbols = "%$#@!" * 40  # 200 bytes that a tokenizer may split into 200 tokens
    assert len(fit_query_strictly(symbols, budget).encode()) <= 50
    assert fit_query_strictly("short", budget) == "short"
