"""The indexing pipeline: bytes → extracted text → chunks → dense + BM25 vectors → points.

Two steps, so the caller can record progress and the collection's BM25 statistics in
between: ``extract_and_chunk`` (CPU only) and ``embed`` (calls the model hub).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.ids import point_id
from core.types import ChunkPayload, ChunkPoint, ImageRef, MultiVector
from ingest.chunker import Chunk, ChunkerConfig, OffsetTokenizer, chunk_document
from ingest.documents import ExtractedDocument, FailureReason, PageImage, ParseFailure
from ingest.embeddings_client import EmbeddingsClient
from ingest.limits import IngestLimits
from ingest.ocr import Recognizer
from ingest.page_store import PageImageManifest, PageImageSink
from ingest.parsers import parse_document
from ingest.records import record_to_document
from retriever.bm25 import Bm25Encoder, token_lengths
from tracing import span

__all__ = ["ChunkedDocument", "DocumentPipeline", "PreparedDocument", "embed_texts", "image_ref"]


@dataclass(frozen=True)
class ChunkedDocument:
    """A document's chunks, before embedding."""

    document: ExtractedDocument
    chunks: list[Chunk]
    bm25_lengths: list[int]
    # The key of the stored page-image manifest; "" when the document has no page images,
    # None when it was parsed without a page-image store.
    page_images: str | None = None


@dataclass(frozen=True)
class PreparedDocument:
    """Points ready for the store."""

    points: list[ChunkPoint]
    title: str | None
    pages: int | None
    page_images: str | None = None
    # chunk_no -> the stored chunk whose dense (and token) vectors it takes: those points
    # carry none (``indexing.reuse``; the store writer fills them in).
    reused: dict[int, int] = field(default_factory=dict)


class DocumentPipeline:
    """Parse, chunk and embed one document at a time (one instance per worker process)."""

    def __init__(
        self,
        embeddings: EmbeddingsClient,
        tokenizer: OffsetTokenizer,
        *,
        chunking: ChunkerConfig | None = None,
        limits: IngestLimits | None = None,
        ocr: Recognizer | None = None,
        page_images: PageImageSink | None = None,
    ) -> None:
        self._embeddings = embeddings
        self._ocr = ocr
        self._page_images = page_images
        self._tokenizer = tokenizer
        self._chunking = chunking or ChunkerConfig()
        self._limits = limits or IngestLimits()
        self._bm25: dict[int, Bm25Encoder] = {}

    def extract_and_chunk(
        self, data: bytes, *, source: str, record: bool, document_id: str
    ) -> ChunkedDocument | ParseFailure:
        """Parse ``data`` (a file, or a record's canonical JSON) and chunk its text."""
        with span(
            "ingest.parse", document_id=document_id, source=source, bytes=len(data)
        ) as parsing:
            if record:
                extracted = record_to_document(json.loads(data), source, self._limits)
            else:
                extracted = parse_document(
                    data, source, self._limits, ocr=self._ocr, page_images=self._page_images
                )
            if isinstance(extracted, ParseFailure):
                parsing.set_attribute("failure", extracted.reason.value)
                return extracted
            parsing.set_attribute("pages", extracted.page_count or 0)
        with span("ingest.chunk", document_id=document_id) as chunking:
            chunks = chunk_document(extracted, self._tokenizer, self._chunking)
            chunking.set_attribute("chunks", len(chunks))
        if not chunks:
            return ParseFailure(
                source=source,
                reason=FailureReason.EMPTY_DOCUMENT,
                message="the document yields no text to index",
                document_id=document_id,
            )
        lengths = token_lengths([c.text for c in chunks])
        return ChunkedDocument(
            document=extracted,
            chunks=chunks,
            bm25_lengths=lengths,
            page_images=self._manifest(extracted),
        )

    def _manifest(self, doc: ExtractedDocument) -> str | None:
        """Store the list of the document's page images; its key ("" when there are none)."""
        if self._page_images is None:
            return None
        pages = {image.page: image.stored for image in doc.images if image.stored is not None}
        if not pages:
            return ""
        manifest = PageImageManifest(source=doc.content_sha256, pages=pages)
        return self._page_images.put(manifest.encode())

    def embed_many(
        self,
        items: list[tuple[ChunkedDocument, str]],
        *,
        store_name: str,
        embedding_model: str,
        dimension: int,
        bm25_avg_len: float,
        late_model: str | None = None,
        late_dimension: int | None = None,
        reuse: Mapping[str, Mapping[int, int]] | None = None,
    ) -> list[PreparedDocument]:
        """Embed the chunks of several documents together (dense via the hub, BM25 locally).

        One embeddings call for all of them, packed into requests by the client, so a
        batch of small documents costs a few requests, not one each. With ``late_model``
        (a collection with late interaction) a second call gets each chunk's token vectors.
        ``reuse`` (document id -> chunk_no -> stored chunk_no) names chunks that are not
        sent to the hub: their points get BM25 vectors only, and ``reused`` says whose
        dense and token vectors they take.

        Raises:
            UpstreamUnavailable: the hub kept failing; the caller retries the batch.
            UpstreamRejected / InvalidInput: the hub refused, or the dimension is wrong.
        """
        reuse = reuse or {}
        chunks = [c for chunked, _ in items for c in chunked.chunks]
        texts = [c.text for c in chunks]
        fresh = [
            c
            for chunked, doc_id in items
            for c in chunked.chunks
            if c.chunk_no not in reuse.get(doc_id, {})
        ]
        with span(
            "ingest.embed",
            documents=len(items),
            chunks=len(chunks),
            reused=len(chunks) - len(fresh),
            model=embedding_model,
            collection=store_name,
        ):
            fresh_dense, fresh_late = (
                embed_texts(
                    self._embeddings,
                    [c.text for c in fresh],
                    token_counts=[c.token_count + 2 for c in fresh],
                    embedding_model=embedding_model,
                    dimension=dimension,
                    late_model=late_model,
                    late_dimension=late_dimension,
                )
                if fresh
                else ([], [])
            )
            sparse = self._encoder(bm25_avg_len).embed_documents(texts)
        dense, late = _spread(items, reuse, fresh_dense, fresh_late)
        out: list[PreparedDocument] = []
        start = 0
        for chunked, document_id in items:
            doc = chunked.document
            end = start + len(chunked.chunks)
            scans = {image.page: image for image in doc.images}
            points = [
                ChunkPoint(
                    id=point_id(store_name, document_id, c.chunk_no),
                    dense=vec,
                    sparse=sv,
                    payload=ChunkPayload(
                        document_id=document_id,
                        content_hash=doc.content_sha256,
                        chunk_no=c.chunk_no,
                        text=c.text,
                        title=c.section or c.title or doc.title,
                        source=doc.source,
                        page=c.page,
                        char_start=c.char_start,
                        char_end=c.char_end,
                        metadata=doc.metadata,
                        image=image_ref(doc, scans, c),
                    ),
                    late=lv,
                )
                for c, vec, sv, lv in zip(
                    chunked.chunks,
                    dense[start:end],
                    sparse[start:end],
                    late[start:end],
                    strict=True,
                )
            ]
            mine = reuse.get(document_id, {})
            out.append(
                PreparedDocument(
                    points=points,
                    title=doc.title,
                    pages=doc.page_count,
                    page_images=chunked.page_images,
                    reused={
                        c.chunk_no: mine[c.chunk_no] for c in chunked.chunks if c.chunk_no in mine
                    },
                )
            )
            start = end
        return out

    def _encoder(self, avg_len: float) -> Bm25Encoder:
        # One encoder per (rounded) average length: the mean drifts slowly as a collection grows.
        key = max(1, round(avg_len))
        if key not in self._bm25:
            self._bm25[key] = Bm25Encoder(avg_len=float(key))
        return self._bm25[key]


def _spread(
    items: list[tuple[ChunkedDocument, str]],
    reuse: Mapping[str, Mapping[int, int]],
    dense: list[list[float]],
    late: list[MultiVector | None],
) -> tuple[list[list[float]], list[MultiVector | None]]:
    """The fresh vectors back in chunk order; a reused chunk gets none (the writer's part)."""
    out_dense: list[list[float]] = []
    out_late: list[MultiVector | None] = []
    at = 0
    for chunked, doc_id in items:
        mine = reuse.get(doc_id, {})
        for c in chunked.chunks:
            if c.chunk_no in mine:
                out_dense.append([])
                out_late.append(None)
            else:
                out_dense.append(dense[at])
                out_late.append(late[at])
                at += 1
    return out_dense, out_late


def embed_texts(
    embeddings: EmbeddingsClient,
    texts: list[str],
    *,
    token_counts: list[int] | None,
    embedding_model: str,
    dimension: int,
    late_model: str | None = None,
    late_dimension: int | None = None,
    with_dense: bool = True,
) -> tuple[list[list[float]], list[MultiVector | None]]:
    """Chunk texts' dense vectors (and token vectors with ``late_model``), packed into
    requests by the client; what ingestion and a re-index both send to the hub. Without
    ``with_dense`` the dense list is empty (a re-index that keeps the dense vectors).

    Raises:
        UpstreamUnavailable: the hub kept failing; the caller retries the batch.
        UpstreamRejected / InvalidInput: the hub refused, or the dimension is wrong.
    """
    client = embeddings
    if client.model != embedding_model:
        client = client.for_model(embedding_model)
    dense = (
        client.embed(texts, token_counts=token_counts, dimension=dimension) if with_dense else []
    )
    late: list[MultiVector | None] = [None] * len(texts)
    if late_model is not None:
        late_client = client.for_model(late_model)
        late = list(
            late_client.embed_tokens(texts, token_counts=token_counts, dimension=late_dimension)
        )
    return dense, late


def image_ref(doc: ExtractedDocument, scans: dict[int, PageImage], chunk: Chunk) -> ImageRef | None:
    """The page image of a chunk read by OCR: the image stored at ingest (its blob key, type
    and size); parsed without a store, the upload's key with no type (nothing to load)."""
    image = scans.get(chunk.page) if chunk.page is not None else None
    if image is None:
        return None
    confidences = [
        line.confidence
        for line in image.lines
        if line.char_start < chunk.char_end and line.char_end > chunk.char_start
    ]
    stored = image.stored
    return ImageRef(
        blob_id=stored.key if stored else doc.content_sha256,
        page=image.page,
        width=stored.width if stored else image.width,
        height=stored.height if stored else image.height,
        mime=stored.mime if stored else None,
        ocr_confidence=round(sum(confidences) / len(confidences), 4) if confidences else None,
        ocr_min_confidence=min(confidences) if confidences else None,
    )
