"""The retriever stage: the chunk store port and its adapters, BM25 encoding, fusion."""

from retriever.bm25 import Bm25Encoder, mean_token_length
from retriever.edge_store import EdgeChunkStore
from retriever.fusion import FusedHit, fuse_legs
from retriever.qdrant_store import AsyncQdrantChunkStore, QdrantChunkStore
from retriever.store import AsyncChunkStore, ChunkStore, StoredChunk, ThreadedChunkStore

__all__ = [
    "AsyncChunkStore",
    "AsyncQdrantChunkStore",
    "Bm25Encoder",
    "ChunkStore",
    "EdgeChunkStore",
    "FusedHit",
    "QdrantChunkStore",
    "StoredChunk",
    "ThreadedChunkStore",
    "fuse_legs",
    "mean_token_length",
]
