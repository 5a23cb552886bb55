"""Incremental re-ingest: a re-uploaded document embeds only the chunks whose text changed.

The store writer, after it wrote a document's points, keeps a *chunk manifest* beside the
lifecycle in Redis: the vector identity of the store generation the points went to, and a
64-bit digest of each chunk's text in chunk order (8 bytes a chunk, one hash per collection:
``P.."chunkmap:"..t..":"..c``, field document id). When a new version of the document is
chunked, the runner plans which new chunks have the text of an old one (``plan_reuse``) and
embeds only the others; their points travel to the writer without dense or token vectors,
naming the old chunk they take them from (``WrittenDocument.reuse``). BM25 vectors are
always computed again: they are local and cheap, and they depend on the collection's mean
chunk length at the time, as in a clean ingest.

The manifest is only a hint. Under the document's write lock, the writer reads the old
points from the store and takes their vectors only when each old point holds exactly the
new chunk's text and vectors of the collection's current shape; otherwise the document is
queued once more with its manifest dropped and is embedded in full (``fill_reused``). The
identity names the store generation and every model field that shapes the vectors, so
after a re-index (another model, late interaction on or off) nothing is reused until the
document is written again: a vector is never taken from another model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import redis

from core.ids import point_id
from core.types import ChunkPoint
from indexing.messages import WrittenDocument
from indexing.records import CollectionRecord
from indexing.state_store import redis_errors, state_key

__all__ = [
    "ChunkManifest",
    "ChunkManifests",
    "chunk_digest",
    "fill_reused",
    "plan_reuse",
    "vector_identity",
]

_DIGEST_BYTES = 8
_COUNTS = state_key("chunkstats")


def chunk_digest(text: str) -> bytes:
    """The 64-bit digest of a chunk's text a manifest keeps (a hint: the writer compares texts)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:_DIGEST_BYTES]


def vector_identity(collection: CollectionRecord) -> str:
    """What the stored vectors of ``collection`` were computed by: the store generation and
    the dense and token models with their dimensions (any change of them is a re-index)."""
    return json.dumps(
        [
            collection.store_name,
            collection.embedding_model,
            collection.dimension,
            collection.late_model,
            collection.late_dimension,
        ],
        separators=(",", ":"),
    )


@dataclass(frozen=True)
class ChunkManifest:
    """A stored document's chunks: the identity of their vectors and each text's digest."""

    identity: str
    digests: tuple[bytes, ...]

    def encode(self) -> str:
        """The manifest as one JSON string (digests as one hex run)."""
        return json.dumps({"id": self.identity, "d": b"".join(self.digests).hex()})

    @classmethod
    def decode(cls, raw: str) -> ChunkManifest | None:
        """The manifest ``encode`` wrote; None for anything else (it is only a hint)."""
        try:
            data = json.loads(raw)
            blob = bytes.fromhex(data["d"])
            identity = data["id"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(identity, str) or len(blob) % _DIGEST_BYTES:
            return None
        digests = tuple(blob[i : i + _DIGEST_BYTES] for i in range(0, len(blob), _DIGEST_BYTES))
        return cls(identity=identity, digests=digests)

    @classmethod
    def of(cls, identity: str, texts: Sequence[str]) -> ChunkManifest:
        """The manifest of chunks with these texts, in chunk order."""
        return cls(identity=identity, digests=tuple(chunk_digest(t) for t in texts))


def plan_reuse(
    manifest: ChunkManifest | None, identity: str, texts: Sequence[str]
) -> dict[int, int]:
    """Which new chunks (by chunk_no) can take the vectors of which old chunk.

    Only under the same vector identity. A chunk whose text sits at the same place keeps its
    own; one that moved takes the first old chunk with its text. Empty: embed everything.
    """
    if manifest is None or manifest.identity != identity:
        return {}
    old = manifest.digests
    first: dict[bytes, int] = {}
    for no, digest in enumerate(old):
        first.setdefault(digest, no)
    plan: dict[int, int] = {}
    for no, text in enumerate(texts):
        digest = chunk_digest(text)
        if no < len(old) and old[no] == digest:
            plan[no] = no
        elif digest in first:
            plan[no] = first[digest]
    return plan


def fill_reused(
    doc: WrittenDocument,
    old_points: Mapping[str, ChunkPoint],
    *,
    namespace: str,
    collection: CollectionRecord,
) -> WrittenDocument | None:
    """``doc`` with the vectors of its reused chunks taken from the stored ``old_points``.

    None when any old point is missing, holds another text or vectors of another shape:
    the document must then be embedded in full.
    """
    if not doc.reuse:
        return doc
    points: list[ChunkPoint] = []
    for point in doc.points:
        source = doc.reuse.get(point.payload.chunk_no)
        if source is None:
            points.append(point)
            continue
        old = old_points.get(point_id(namespace, doc.id, source))
        if old is None or old.payload.text != point.payload.text:
            return None
        if len(old.dense) != collection.dimension:
            return None
        if collection.late_model is None:
            late = None
        elif old.late is None or old.late.dim != collection.late_dimension:
            return None
        else:
            late = old.late
        points.append(point.model_copy(update={"dense": old.dense, "late": late}))
    return doc.model_copy(update={"points": points})


def reused_ids(doc: WrittenDocument, namespace: str) -> list[str]:
    """The stored points whose vectors ``doc`` takes."""
    return [point_id(namespace, doc.id, source) for source in sorted(set(doc.reuse.values()))]


class ChunkManifests:
    """The chunk manifests of stored documents, one Redis hash per collection."""

    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    @staticmethod
    def key(tenant: str, collection: str) -> str:
        """The Redis hash of one collection's manifests."""
        return state_key("chunkmap", tenant, collection)

    def load(
        self, tenant: str, collection: str, doc_ids: Sequence[str]
    ) -> dict[str, ChunkManifest]:
        """The manifests of these documents that exist (one round trip)."""
        if not doc_ids:
            return {}
        with redis_errors():
            raw = cast(list[str | None], self._r.hmget(self.key(tenant, collection), list(doc_ids)))
        out: dict[str, ChunkManifest] = {}
        for doc_id, value in zip(doc_ids, raw, strict=True):
            manifest = ChunkManifest.decode(value) if value is not None else None
            if manifest is not None:
                out[doc_id] = manifest
        return out

    def save(self, tenant: str, collection: str, manifests: Mapping[str, ChunkManifest]) -> None:
        """Record what was just written for these documents."""
        if not manifests:
            return
        with redis_errors():
            self._r.hset(
                self.key(tenant, collection),
                mapping={doc_id: m.encode() for doc_id, m in manifests.items()},
            )

    def count(self, *, embedded: int, reused: int) -> None:
        """Add to the all-time chunk counts of indexed versions (``sieve_ingest_chunks_total``)."""
        with redis_errors():
            pipe = self._r.pipeline(transaction=False)
            pipe.hincrby(_COUNTS, "embedded", embedded)
            pipe.hincrby(_COUNTS, "reused", reused)
            pipe.execute()

    def counts(self) -> dict[str, int]:
        """Chunks of indexed versions so far: ``embedded`` and ``reused``."""
        with redis_errors():
            raw = cast(dict[str, str], self._r.hgetall(_COUNTS))
        return {k: int(raw.get(k, 0)) for k in ("embedded", "reused")}

    def drop(self, tenant: str, collection: str, doc_ids: Sequence[str]) -> None:
        """Forget these documents' manifests (deleted, or to be embedded in full)."""
        if not doc_ids:
            return
        with redis_errors():
            self._r.hdel(self.key(tenant, collection), *doc_ids)
