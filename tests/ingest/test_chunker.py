"""The chunker: exact offsets, bounded sizes, structural cut points, pages and sections kept."""

from __future__ import annotations

import itertools
import re
from bisect import bisect_left
from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from ingest import (
    Chunk,
    ChunkerConfig,
    DocumentKind,
    ExtractedDocument,
    HfOffsetTokenizer,
    IngestLimits,
    Page,
    chunk_document,
    chunk_documents,
    iter_jsonl_records,
    parse_document,
)
from ingest.tokenizer import bge_small_tokenizer_path
from tests.ingest.conftest import SCIFACT_CORPUS
from tests.ingest.samples import make_pdf

_WORDS = re.compile(r"\w+|[^\w\s]")


class WordTokenizer:
    """A transparent stand-in: one token per word or punctuation mark."""

    def offsets(self, text: str) -> Sequence[tuple[int, int]]:
        return [m.span() for m in _WORDS.finditer(text)]


def _doc(text: str, **fields: object) -> ExtractedDocument:
    return ExtractedDocument(
        text=text,
        source="t.txt",
        kind=DocumentKind.TXT,
        content_sha256="0" * 64,
        size_bytes=len(text),
        **fields,  # type: ignore[arg-type]
    )


def _assert_exact(doc: ExtractedDocument, chunks: list[Chunk]) -> None:
    assert [c.chunk_no for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert doc.text[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.text == chunk.text.strip()


def _sentence(n: int, words: int) -> str:
    return " ".join(f"S{n}w{i}" if i == 0 else f"s{n}w{i}" for i in range(words)) + "."


# ---------------------------------------------------------------- SciFact, real tokenizer


@pytest.fixture(scope="module")
def scifact() -> list[ExtractedDocument]:
    with SCIFACT_CORPUS.open("rb") as lines:
        docs = list(iter_jsonl_records(lines, IngestLimits(), source="scifact"))
    assert len(docs) == 5183
    return [d for d in docs if isinstance(d, ExtractedDocument)]


@pytest.fixture(scope="module")
def scifact_chunks(
    scifact: list[ExtractedDocument], bge_tokenizer: HfOffsetTokenizer
) -> list[list[Chunk]]:
    return chunk_documents(scifact, bge_tokenizer, ChunkerConfig())


def test_scifact_offsets_sizes_overlap_and_coverage(
    scifact: list[ExtractedDocument],
    scifact_chunks: list[list[Chunk]],
    bge_tokenizer: HfOffsetTokenizer,
) -> None:
    config = ChunkerConfig()
    assert sum(len(c) for c in scifact_chunks) > len(scifact)  # some abstracts need splitting
    doc_tokens = bge_tokenizer.offsets_batch([d.text for d in scifact])
    flat = [c for chunks in scifact_chunks for c in chunks]
    # Re-tokenised alone (as the embedder will see them) chunks still fit the window.
    alone = bge_tokenizer.offsets_batch([c.text for c in flat])
    assert max(len(t) for t in alone) <= config.hard_max_tokens
    for doc, chunks, tokens in zip(scifact, scifact_chunks, doc_tokens, strict=True):
        assert chunks, doc.document_id
        _assert_exact(doc, chunks)
        starts = [a for a, _ in tokens]
        assert chunks[0].char_start == tokens[0][0]
        assert chunks[-1].char_end == tokens[-1][1]
        for chunk in chunks:
            assert chunk.token_count <= config.target_tokens
            assert chunk.title == doc.title
        for before, after in itertools.pairwise(chunks):
            assert after.char_start > before.char_start
            assert after.char_start <= before.char_end  # no gap: every token is in a chunk
            shared = bisect_left(starts, before.char_end) - bisect_left(starts, after.char_start)
            assert 0 <= shared <= config.overlap_tokens


def test_scifact_chunking_is_deterministic_and_batch_equals_single(
    scifact: list[ExtractedDocument], bge_tokenizer: HfOffsetTokenizer
) -> None:
    sample = scifact[:300]
    single = [chunk_document(d, bge_tokenizer) for d in sample]
    assert single == [chunk_document(d, bge_tokenizer) for d in sample]
    assert chunk_documents(sample, bge_tokenizer) == single


def test_scifact_splits_prefer_sentence_ends(scifact_chunks: list[list[Chunk]]) -> None:
    cuts = [c for chunks in scifact_chunks for c in chunks[:-1]]
    at_sentence_end = sum(1 for c in cuts if c.text.endswith((".", "?", "!", ".)", '."')))
    assert cuts
    assert at_sentence_end / len(cuts) > 0.9


# ---------------------------------------------------------------- structure, word tokenizer


def test_paragraph_boundaries_win_over_sentence_boundaries() -> None:
    paragraphs = [" ".join(_sentence(p * 10 + s, 9) for s in range(6)) for p in range(5)]
    doc = _doc("\n\n".join(paragraphs))  # 60 tokens per paragraph
    config = ChunkerConfig(target_tokens=130, overlap_tokens=0)
    chunks = chunk_document(doc, WordTokenizer(), config)
    _assert_exact(doc, chunks)
    assert [c.text for c in chunks] == [
        "\n\n".join(paragraphs[0:2]),
        "\n\n".join(paragraphs[2:4]),
        paragraphs[4],
    ]


def test_long_paragraph_is_cut_at_sentences_with_overlap_from_a_sentence_start() -> None:
    text = " ".join(_sentence(s, 19) for s in range(20))  # 20 tokens per sentence
    doc = _doc(text)
    config = ChunkerConfig(target_tokens=100, overlap_tokens=30)
    chunks = chunk_document(doc, WordTokenizer(), config)
    _assert_exact(doc, chunks)
    assert len(chunks) > 4
    for before, after in itertools.pairwise(chunks):
        assert before.text.endswith(".")
        assert before.token_count <= 100
        overlap = doc.text[after.char_start : before.char_end]
        assert overlap  # the next chunk repeats the previous chunk's last sentence
        assert overlap.startswith("S")
        assert overlap.endswith(".")
        assert len(WordTokenizer().offsets(overlap)) <= 30


def test_text_without_structure_is_cut_at_words_then_tokens(
    bge_tokenizer: HfOffsetTokenizer,
) -> None:
    words = _doc(" ".join(f"word{i}" for i in range(3000)))
    config = ChunkerConfig(target_tokens=64, overlap_tokens=8)
    chunks = chunk_document(words, bge_tokenizer, config)
    _assert_exact(words, chunks)
    assert all(c.token_count <= 64 for c in chunks)
    # Cut between words, not inside "word123".
    assert all(re.fullmatch(r"word\d+( word\d+)*", c.text) for c in chunks)
    # No whitespace at all: pieces of 80-char words glued by hyphens. (A single word over
    # 100 chars would be one [UNK] token to WordPiece, so it cannot be used here.)
    blob = _doc("-".join(["QmFzZTY0" * 10] * 200))
    blob_chunks = chunk_document(blob, bge_tokenizer, config)
    _assert_exact(blob, blob_chunks)
    assert len(blob_chunks) > 10
    assert all(c.token_count <= 64 for c in blob_chunks)
    assert blob_chunks[0].char_start == 0
    assert blob_chunks[-1].char_end == len(blob.text)


def test_pages_are_carried_from_a_real_pdf() -> None:
    pages = [[_sentence(p * 100 + s, 11) for s in range(12)] for p in range(3)]
    doc = parse_document(make_pdf(pages), "paged.pdf", IngestLimits())
    assert isinstance(doc, ExtractedDocument)
    chunks = chunk_document(doc, WordTokenizer(), ChunkerConfig(target_tokens=50, overlap_tokens=5))
    _assert_exact(doc, chunks)
    assert {c.page for c in chunks} == {1, 2, 3}
    for chunk in chunks:
        page = next(p for p in doc.pages if p.char_start <= chunk.char_start < p.char_end)
        assert chunk.page == page.number
    assert [c.page for c in chunks] == sorted(c.page or 0 for c in chunks)


def test_page_is_none_without_pages() -> None:
    chunks = chunk_document(_doc("Just text."), WordTokenizer())
    assert [(c.page, c.section, c.token_count) for c in chunks] == [(None, None, 3)]


def test_sections_are_hard_boundaries_and_bare_headings_join_the_next() -> None:
    body = " ".join(_sentence(s, 9) for s in range(4))
    source = f"# Guide\n\n## Install\n\n{body}\n\n## Use\n\n{body}\n"
    doc = parse_document(source.encode(), "guide.md", IngestLimits())
    assert isinstance(doc, ExtractedDocument)
    chunks = chunk_document(doc, WordTokenizer(), ChunkerConfig(target_tokens=200))
    _assert_exact(doc, chunks)
    # "# Guide" alone is too small to stand alone; it rides with the Install section.
    assert [(c.section, c.text.split("\n")[0]) for c in chunks] == [
        ("Install", "# Guide"),
        ("Use", "## Use"),
    ]
    assert all(c.title == "Guide" for c in chunks)


def test_a_small_last_section_still_becomes_a_chunk() -> None:
    doc = _doc(
        "Body text here.\n\nEnd",
        sections=(),
        pages=(Page(number=4, char_start=0, char_end=20),),
    )
    chunks = chunk_document(doc, WordTokenizer(), ChunkerConfig(merge_sections_below=50))
    assert [(c.text, c.page) for c in chunks] == [("Body text here.\n\nEnd", 4)]


def test_no_tokens_means_no_chunks() -> None:
    assert chunk_document(_doc("... ---"), _NoTokens()) == []


class _NoTokens:
    def offsets(self, text: str) -> Sequence[tuple[int, int]]:
        return []


def test_config_refuses_sizes_over_the_window_or_overlap_over_half() -> None:
    with pytest.raises(ValidationError):
        ChunkerConfig(target_tokens=600)
    with pytest.raises(ValidationError):
        ChunkerConfig(target_tokens=100, overlap_tokens=51)
    assert ChunkerConfig().target_tokens == 256
    assert ChunkerConfig().overlap_tokens == 32


# ---------------------------------------------------------------- tokenizer loading


def test_bge_tokenizer_counts_past_512_and_skips_special_tokens(
    bge_tokenizer: HfOffsetTokenizer,
) -> None:
    assert bge_small_tokenizer_path().name == "tokenizer.json"
    assert "site-packages" in str(bge_small_tokenizer_path())
    text = "hello " * 2000
    assert bge_tokenizer.count(text) == 2000  # not truncated to the 512 window
    assert bge_tokenizer.offsets("Hello, world") == [(0, 5), (5, 6), (7, 12)]
    assert bge_tokenizer.offsets_batch(["a b", "Hello, world"])[1] == [(0, 5), (5, 6), (7, 12)]
