"""Splitting candidates into requests within the hub's document and image caps."""

from __future__ import annotations

import pytest

from reranker.documents import PreparedDocument
from reranker.splitting import one_image_document_per_request, split_requests


def _doc(images: int = 0) -> PreparedDocument:
    return PreparedDocument("t", image_uris=("data:image/png;base64,AA",) * images)


def test_everything_in_one_request_when_it_fits() -> None:
    assert split_requests([_doc()] * 5, max_documents=10, max_images=4) == [[0, 1, 2, 3, 4]]


def test_split_by_document_count() -> None:
    batches = split_requests([_doc()] * 5, max_documents=2, max_images=4)
    assert batches == [[0, 1], [2, 3], [4]]


def test_split_by_image_count() -> None:
    docs = [_doc(2), _doc(0), _doc(1), _doc(2), _doc(1)]
    batches = split_requests(docs, max_documents=10, max_images=3)
    assert batches == [[0, 1, 2], [3, 4]]
    for batch in batches:
        assert sum(docs[i].image_count for i in batch) <= 3


def test_a_document_over_the_image_cap_goes_alone() -> None:
    batches = split_requests([_doc(1), _doc(5), _doc(1)], max_documents=10, max_images=2)
    assert batches == [[0], [1], [2]]


def test_no_documents_no_requests() -> None:
    assert split_requests([], max_documents=2, max_images=2) == []


def test_caps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        split_requests([_doc()], max_documents=0, max_images=1)


def test_fallback_sends_one_image_document_per_request() -> None:
    docs = [_doc(1), _doc(0), _doc(2), _doc(0), _doc(0)]
    batches = one_image_document_per_request([0, 1, 2, 3, 4], docs, max_documents=2)
    assert batches == [[1, 3], [4], [0], [2]]
