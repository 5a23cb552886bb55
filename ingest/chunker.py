"""Token-aware chunking: section, then paragraph, sentence, line, word, and token cuts.

Each section is tokenised once; chunks are cut by slicing its token offsets, so a chunk's
text is always an exact substring of the document text (``text[char_start:char_end]``).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ingest.documents import ExtractedDocument

__all__ = [
    "BatchOffsetTokenizer",
    "Chunk",
    "ChunkerConfig",
    "OffsetTokenizer",
    "chunk_document",
    "chunk_documents",
]

# Boundary strengths at a token index: the cut before that token.
_NONE, _WORD, _LINE, _SENTENCE, _PARAGRAPH = 0, 1, 2, 3, 4
_NEWLINES = re.compile(r"\n(?:[ \t]*\n)*")
# A sentence ends at . ! ? (plus closing quotes/brackets) followed by space and a word that
# does not start lower-case: "e.g. the" and "3.5 mm" stay whole.
_SENTENCE_END = re.compile(
    r"(?:[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+(?=[^\sa-z])|[\u3002\uff01\uff1f]\s*)"
)


class OffsetTokenizer(Protocol):
    """Anything that can list a text's tokens as (char_start, char_end) pairs."""

    def offsets(self, text: str) -> Sequence[tuple[int, int]]:
        """Return each token's char span in ``text``, without special tokens."""
        ...


class BatchOffsetTokenizer(OffsetTokenizer, Protocol):
    """An ``OffsetTokenizer`` that can also tokenise many texts in one (parallel) call."""

    def offsets_batch(self, texts: Sequence[str]) -> Sequence[Sequence[tuple[int, int]]]:
        """Return ``offsets(text)`` for each text, in order."""
        ...


class ChunkerConfig(BaseModel):
    """Chunk sizes in tokens of the embedding model (defaults fit bge-small's 512 window)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target_tokens: Annotated[int, Field(gt=0)] = 256
    overlap_tokens: Annotated[int, Field(ge=0)] = 32
    # The model window minus [CLS] and [SEP]; no chunk may ever exceed it.
    hard_max_tokens: Annotated[int, Field(gt=0)] = 510
    # A structural cut is taken only if the chunk is at least this full; else a weaker one.
    min_fill: Annotated[float, Field(ge=0, le=1)] = 0.5
    # Sections shorter than this (a heading on its own) join the section that follows.
    merge_sections_below: Annotated[int, Field(ge=0)] = 16

    @model_validator(mode="after")
    def _consistent(self) -> ChunkerConfig:
        if self.target_tokens > self.hard_max_tokens:
            raise ValueError("target_tokens must not exceed hard_max_tokens")
        if self.overlap_tokens * 2 > self.target_tokens:
            raise ValueError("overlap_tokens must be at most half of target_tokens")
        return self


class Chunk(BaseModel):
    """One chunk: ``text == document.text[char_start:char_end]``; ``page`` is where it starts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chunk_no: Annotated[int, Field(ge=0)]
    text: str
    char_start: Annotated[int, Field(ge=0)]
    char_end: Annotated[int, Field(ge=0)]
    token_count: Annotated[int, Field(ge=0)]
    title: str | None = None
    section: str | None = None
    page: int | None = None


@dataclass
class _Segment:
    """A run of tokens chunked on its own (a section, or small sections merged forward)."""

    title: str | None
    starts: list[int]
    ends: list[int]


def chunk_document(
    document: ExtractedDocument,
    tokenizer: OffsetTokenizer,
    config: ChunkerConfig | None = None,
) -> list[Chunk]:
    """Split a document into chunks with dense 0-based ``chunk_no``; deterministic.

    Returns an empty list when the text has no tokens; callers must mark such a document
    failed rather than index it with zero chunks.
    """
    spans = _section_spans(document)
    offsets = [tokenizer.offsets(document.text[start:end]) for _, start, end in spans]
    return _chunk(document, spans, offsets, config or ChunkerConfig())


def chunk_documents(
    documents: Sequence[ExtractedDocument],
    tokenizer: BatchOffsetTokenizer,
    config: ChunkerConfig | None = None,
) -> list[list[Chunk]]:
    """Chunk many documents, tokenising all their sections in one batch call (multi-core).

    The result is identical to ``[chunk_document(d, tokenizer, config) for d in documents]``.
    """
    config = config or ChunkerConfig()
    all_spans = [_section_spans(document) for document in documents]
    texts = [d.text[start:end] for d, spans in zip(documents, all_spans, strict=True)
             for _, start, end in spans]  # fmt: skip
    offsets = tokenizer.offsets_batch(texts)
    if len(offsets) != len(texts):
        raise ValueError("offsets_batch returned a different number of results than texts")
    out: list[list[Chunk]] = []
    at = 0
    for document, spans in zip(documents, all_spans, strict=True):
        out.append(_chunk(document, spans, offsets[at : at + len(spans)], config))
        at += len(spans)
    return out


def _section_spans(document: ExtractedDocument) -> list[tuple[str | None, int, int]]:
    spans = [(s.title, s.char_start, s.char_end) for s in document.sections]
    return spans or [(None, 0, len(document.text))]


def _chunk(
    document: ExtractedDocument,
    spans: list[tuple[str | None, int, int]],
    offsets: Sequence[Sequence[tuple[int, int]]],
    config: ChunkerConfig,
) -> list[Chunk]:
    text = document.text
    page_starts = [p.char_start for p in document.pages]
    page_numbers = [p.number for p in document.pages]
    chunks: list[Chunk] = []
    for segment in _segments(spans, offsets, config):
        for first, last in _cuts(text, segment, config):
            start, end = segment.starts[first], segment.ends[last - 1]
            at = bisect_right(page_starts, start) - 1
            chunks.append(
                Chunk(
                    chunk_no=len(chunks),
                    text=text[start:end],
                    char_start=start,
                    char_end=end,
                    token_count=last - first,
                    title=document.title,
                    section=segment.title,
                    page=page_numbers[at] if at >= 0 else None,
                )
            )
    return chunks


def _segments(
    spans: list[tuple[str | None, int, int]],
    offsets: Sequence[Sequence[tuple[int, int]]],
    config: ChunkerConfig,
) -> list[_Segment]:
    """Absolute token spans per section; sections too small to stand alone join the next."""
    segments: list[_Segment] = []
    carry: _Segment | None = None
    for (title, span_start, _), span_offsets in zip(spans, offsets, strict=True):
        # Zero-width tokens have no text to cut at.
        starts = [a + span_start for a, b in span_offsets if b > a]
        ends = [b + span_start for a, b in span_offsets if b > a]
        if carry is not None:
            starts, ends = carry.starts + starts, carry.ends + ends
            carry = None
        segment = _Segment(title=title, starts=starts, ends=ends)
        if len(starts) < config.merge_sections_below:
            carry = segment
        else:
            segments.append(segment)
    if carry is not None and carry.starts:
        segments.append(carry)
    return segments


def _levels(text: str, segment: _Segment) -> bytearray:
    """Boundary strength before each token index (index n: the segment's end)."""
    starts = segment.starts
    n = len(starts)
    levels = bytearray(n + 1)
    levels[n] = _PARAGRAPH
    lo, hi = starts[0], segment.ends[-1]

    def mark(position: int, level: int) -> None:
        index = bisect_left(starts, position)
        if 0 < index < n and levels[index] < level:
            levels[index] = level

    for match in _NEWLINES.finditer(text, lo, hi):
        mark(match.end(), _PARAGRAPH if match.group().count("\n") > 1 else _LINE)
    for match in _SENTENCE_END.finditer(text, lo, hi):
        mark(match.end(), _SENTENCE)
    return levels


def _cuts(text: str, segment: _Segment, config: ChunkerConfig) -> list[tuple[int, int]]:
    """Token index ranges [first, last) of the segment's chunks, in order."""
    n = len(segment.starts)
    target = config.target_tokens
    if n <= target:
        return [(0, n)] if n else []
    levels = _levels(text, segment)
    starts, ends = segment.starts, segment.ends
    min_fill = max(1, int(target * config.min_fill))

    def is_word_gap(index: int) -> bool:
        return ends[index - 1] < starts[index]

    cuts: list[tuple[int, int]] = []
    first = 0
    while n - first > target:
        hi = first + target
        cut = _rightmost(levels, first + min_fill, hi, (_PARAGRAPH, _SENTENCE, _LINE))
        if cut is None:
            cut = next((k for k in range(hi, first + min_fill - 1, -1) if is_word_gap(k)), hi)
        cuts.append((first, cut))
        first = _overlap_start(levels, first, cut, config.overlap_tokens, is_word_gap)
    cuts.append((first, n))
    return cuts


def _rightmost(levels: bytearray, lo: int, hi: int, order: tuple[int, ...]) -> int | None:
    """The rightmost index in [lo, hi] at the strongest level of ``order`` present there."""
    for level in order:
        found = max(levels.rfind(bytes((v,)), lo, hi + 1) for v in range(level, _PARAGRAPH + 1))
        if found >= lo:
            return found
    return None


def _overlap_start(
    levels: bytearray, first: int, cut: int, overlap: int, is_word_gap: Callable[[int], bool]
) -> int:
    """Where the next chunk starts: up to ``overlap`` tokens back, at the strongest boundary."""
    if overlap == 0:
        return cut
    lo = max(first + 1, cut - overlap)
    for level in (_PARAGRAPH, _SENTENCE, _LINE):
        found = [levels.find(bytes((v,)), lo, cut) for v in range(level, _PARAGRAPH + 1)]
        hits = [h for h in found if h >= 0]
        if hits:
            return min(hits)
    # No structure in reach: overlap from the earliest whole word, else not at all.
    return next((k for k in range(lo, cut) if is_word_gap(k)), cut)
