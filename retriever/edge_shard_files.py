"""An embedded-store shard's configuration, and creating its files in a child process.

qdrant-edge holds the GIL for all of ``EdgeShard.create``, the payload indexes and the
flush (~90 ms here). In the API process, which owns the embedded store, that stalled every
request on the event loop for as long: one tenant creating collections in a loop made
another tenant's ``GET /v1/collections`` up to 9x slower at p99 (bench/isolation.py). So
``EdgeChunkStore.create_collection`` runs this file as a script, by its path (only
qdrant_edge and the standard library load: ~20 ms), and waits for it without the GIL.

It is also the one home of the shard's configuration, which the store loads shards with:
so this file imports nothing of Sieve's (the store passes plain values).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import qdrant_edge as edge

__all__ = ["ShardRequest", "create_shard", "shard_config"]

_DISTANCES = {
    "cosine": edge.Distance.Cosine,
    "dot": edge.Distance.Dot,
    "euclid": edge.Distance.Euclid,
}


@dataclass(frozen=True)
class ShardRequest:
    """What a shard is made of, in plain values (JSON between the processes)."""

    # Vector names (retriever.layout's): dense, BM25 sparse, late-interaction tokens.
    names: tuple[str, str, str]
    dense_size: int
    distance: str
    sparse: bool
    late_size: int | None
    search_threads: int | None
    # (field, "keyword" | "integer", is_tenant)
    indexes: tuple[tuple[str, str, bool], ...] = ()

    def to_json(self) -> str:
        """The request as the child reads it on stdin."""
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> ShardRequest:
        """Parse ``to_json``'s output."""
        raw: dict[str, Any] = json.loads(text)
        raw["names"] = tuple(raw["names"])
        raw["indexes"] = tuple((str(f), str(k), bool(t)) for f, k, t in raw["indexes"])
        return cls(**raw)


def _late_params(size: int) -> edge.EdgeVectorParams:
    """Token vectors: MaxSim, never searched by HNSW (m=0: they only rescore a prefetch),
    originals on disk (Cold), an int8 copy for scoring once segments are optimised."""
    return edge.EdgeVectorParams(
        size=size,
        distance=edge.Distance.Cosine,
        multivector_config=edge.MultiVectorConfig(edge.MultiVectorComparator.MaxSim),
        hnsw_config=edge.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000),
        quantization_config=edge.ScalarQuantizationConfig(type=edge.ScalarType.Int8, quantile=0.99),
        memory=edge.Memory.Cold,
    )


def shard_config(request: ShardRequest) -> edge.EdgeConfig:
    """The Edge configuration a shard is created and loaded with."""
    dense, sparse_name, late = request.names
    sparse = {sparse_name: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)}
    vectors = {
        dense: edge.EdgeVectorParams(size=request.dense_size, distance=_DISTANCES[request.distance])
    }
    if request.late_size is not None:
        vectors[late] = _late_params(request.late_size)
    return edge.EdgeConfig(
        vectors=vectors,
        sparse_vectors=sparse if request.sparse else None,
        max_search_threads=request.search_threads,
    )


def _index_op(field: str, kind: str, *, is_tenant: bool) -> edge.UpdateOperation:
    params: edge.KeywordIndexParams | edge.IntegerIndexParams
    if kind == "keyword":
        params = edge.KeywordIndexParams(is_tenant=is_tenant or None, enable_hnsw=False)
    else:
        params = edge.IntegerIndexParams(lookup=True, range=True, enable_hnsw=False)
    return edge.UpdateOperation.create_field_index(field, params)


def create_shard(path: str, request: ShardRequest) -> None:
    """Create the shard at ``path`` with its payload indexes, flushed and closed."""
    shard = edge.EdgeShard.create(path, shard_config(request))
    try:
        for field, kind, is_tenant in request.indexes:
            shard.update(_index_op(field, kind, is_tenant=is_tenant))
        shard.flush()
    finally:
        shard.close()


def main(argv: list[str]) -> int:
    """``python edge_shard_files.py PATH`` with the request on stdin; exit 1 with Edge's
    message on stderr when it fails."""
    try:
        create_shard(argv[1], ShardRequest.from_json(sys.stdin.read()))
    except Exception as exc:  # noqa: BLE001 - the parent maps Edge's message to its errors
        sys.stderr.write(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
