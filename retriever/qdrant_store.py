"""``ChunkStore`` on a Qdrant server through qdrant-client, sync and async.

Request building and response parsing are pure functions shared by both classes; each
method is the few lines of I/O around them, inside the one error-mapping choke point.
"""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import grpc  # type: ignore[import-untyped]
from qdrant_client import AsyncQdrantClient, QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    SieveError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from core.retry import parse_retry_after
from core.types import (
    ChunkFilter,
    ChunkPoint,
    Distance,
    HybridQuery,
    QueryMode,
    ScoredHit,
    SparseVec,
    StoreCollectionSpec,
)
from retriever.filters import document_filter, to_qdrant_filter
from retriever.fusion import LegHit, fuse_late, fuse_legs
from retriever.layout import (
    DENSE_VECTOR,
    LATE_VECTOR,
    PAYLOAD_INDEXES,
    SPARSE_VECTOR,
    IndexKind,
    canonical_id,
    dense_list,
    late_from_stored,
    late_mean_tokens,
    late_rows,
    payload_from_stored,
    payload_to_stored,
    scored_hits,
)
from retriever.store import StoredChunk

__all__ = ["AsyncQdrantChunkStore", "QdrantChunkStore"]

_SCROLL_PAGE = 1024
_DISTANCES = {
    Distance.COSINE: models.Distance.COSINE,
    Distance.DOT: models.Distance.DOT,
    Distance.EUCLID: models.Distance.EUCLID,
}
_MISSING_COLLECTION = re.compile(
    r"collection\W+\S+?\W+(?:not found|doesn't exist|does not exist)", re.IGNORECASE
)
_GRPC_INVALID = {"INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE"}
_GRPC_RETRYABLE = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"}

# ---------------------------------------------------------------- error mapping


def _detail(exc: UnexpectedResponse) -> str:
    try:
        body = json.loads(exc.content)
        return str(body.get("status", {}).get("error", "")) or exc.reason_phrase
    except (ValueError, AttributeError):
        return exc.content.decode("utf-8", "replace")[:300] or exc.reason_phrase


def _retry_after(exc: UnexpectedResponse) -> float | None:
    return parse_retry_after(exc.headers.get("retry-after") if exc.headers is not None else None)


def _by_text(text: str, where: str) -> SieveError:
    # Only a missing *collection* is NotFound; "vector bm25 is not found" is bad input.
    if _MISSING_COLLECTION.search(text):
        return NotFound(f"{where}{text}")
    if "already exists" in text.lower():
        return Conflict(f"{where}{text}")
    return InvalidInput(f"{where}{text}")


def _from_http(exc: UnexpectedResponse, where: str) -> SieveError:
    status, detail = exc.status_code or 0, _detail(exc)
    if status == 429 or status >= 500:
        return UpstreamUnavailable(
            f"{where}Qdrant answered {status}: {detail}", retry_after=_retry_after(exc)
        )
    by_status = {404: NotFound, 409: Conflict}.get(status)
    if by_status is not None:
        return by_status(f"{where}{detail}")
    if status in (400, 422):
        return _by_text(detail, where)
    return UpstreamRejected(f"{where}Qdrant answered {status}: {detail}", status=status)


def _from_grpc(exc: grpc.RpcError, where: str) -> SieveError:
    code = str(getattr(getattr(exc, "code", lambda: None)(), "name", "UNKNOWN"))
    details = str(getattr(exc, "details", lambda: "")() or code)
    by_code = {"NOT_FOUND": NotFound, "ALREADY_EXISTS": Conflict}.get(code)
    if by_code is not None:
        return by_code(f"{where}{details}")
    if code in _GRPC_INVALID:
        return _by_text(details, where)
    if code in _GRPC_RETRYABLE:
        return UpstreamUnavailable(f"{where}Qdrant gRPC {code}: {details}")
    return UpstreamRejected(f"{where}Qdrant gRPC {code}: {details}")


def map_qdrant_error(exc: Exception, name: str | None = None) -> SieveError:
    """The ``core.errors`` exception for any exception qdrant-client raised."""
    where = f"collection {name!r}: " if name else ""
    if isinstance(exc, SieveError):
        return exc
    if isinstance(exc, UnexpectedResponse):
        return _from_http(exc, where)
    if isinstance(exc, grpc.RpcError):
        return _from_grpc(exc, where)
    if isinstance(exc, ValueError):  # local mode, and pydantic validation of request models
        return _by_text(str(exc), where)
    if isinstance(exc, RuntimeError) and "closed" in str(exc):
        return SieveError("the chunk store is closed", code="store_closed")
    # ResponseHandlingException (wraps httpx transport errors and timeouts), OSError, and
    # anything else the client raises: the peer did not answer usably; retrying may help.
    return UpstreamUnavailable(f"{where}Qdrant is unavailable: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def _qdrant_errors(name: str | None = None) -> Iterator[None]:
    """The one choke point: every qdrant-client call runs inside it."""
    try:
        yield
    except Exception as exc:
        raise map_qdrant_error(exc, name) from exc


@contextlib.contextmanager
def _quiet_local_index_warning() -> Iterator[None]:
    # qdrant-client's local mode (tests, `:memory:`) ignores payload indexes and warns;
    # a server honours them. The warning says nothing we can act on.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Payload indexes have no effect", UserWarning)
        yield


# ---------------------------------------------------------------- requests (pure)


def collection_config(
    spec: StoreCollectionSpec,
) -> tuple[dict[str, models.VectorParams], dict[str, models.SparseVectorParams] | None]:
    """Dense, sparse and (with late interaction) token vector config of the shared layout."""
    dense = {
        DENSE_VECTOR: models.VectorParams(size=spec.dense_size, distance=_DISTANCES[spec.distance])
    }
    if spec.late_size is not None:
        dense[LATE_VECTOR] = late_vector_params(spec.late_size)
    sparse = {SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)}
    return dense, sparse if spec.sparse else None


def late_vector_params(size: int) -> models.VectorParams:
    """Token vectors: MaxSim, no HNSW graph (m=0: they only rescore a prefetch), originals
    on disk, an int8 scalar-quantized copy in RAM for scoring."""
    return models.VectorParams(
        size=size,
        distance=models.Distance.COSINE,
        multivector_config=models.MultiVectorConfig(
            comparator=models.MultiVectorComparator.MAX_SIM
        ),
        hnsw_config=models.HnswConfigDiff(m=0),
        quantization_config=models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, quantile=0.99, always_ram=True
            )
        ),
        on_disk=True,
    )


def payload_index_schemas() -> list[tuple[str, models.PayloadSchemaParams]]:
    """The layout's payload indexes, HNSW payload links off."""
    schemas: list[tuple[str, models.PayloadSchemaParams]] = []
    for index in PAYLOAD_INDEXES:
        params: models.PayloadSchemaParams
        if index.kind is IndexKind.KEYWORD:
            params = models.KeywordIndexParams(
                type=models.KeywordIndexType.KEYWORD,
                is_tenant=index.is_tenant or None,
                enable_hnsw=False,
            )
        else:
            params = models.IntegerIndexParams(
                type=models.IntegerIndexType.INTEGER, lookup=True, range=True, enable_hnsw=False
            )
        schemas.append((index.field, params))
    return schemas


def to_point_structs(points: Sequence[ChunkPoint]) -> list[models.PointStruct]:
    """qdrant-client points for ``points``."""
    structs: list[models.PointStruct] = []
    for point in points:
        vector: dict[str, Any] = {DENSE_VECTOR: point.dense}
        if point.sparse is not None:
            vector[SPARSE_VECTOR] = models.SparseVector.model_construct(
                indices=point.sparse.indices, values=point.sparse.values
            )
        if point.late is not None:
            vector[LATE_VECTOR] = late_rows(point.late)
        structs.append(
            models.PointStruct(
                id=canonical_id(point.id), vector=vector, payload=payload_to_stored(point.payload)
            )
        )
    return structs


def leg_requests(query: HybridQuery) -> list[models.QueryRequest]:
    """One request per recall leg the query's mode runs (dense first)."""
    query_filter = to_qdrant_filter(query.filter)
    legs: list[models.QueryRequest] = []
    if query.mode is not QueryMode.SPARSE and query.dense is not None:
        legs.append(
            models.QueryRequest(
                query=query.dense,
                using=DENSE_VECTOR,
                filter=query_filter,
                limit=query.leg_limit,
                with_payload=True,
                with_vector=False,
            )
        )
    if query.mode is not QueryMode.DENSE and query.sparse is not None:
        sparse = models.SparseVector(indices=query.sparse.indices, values=query.sparse.values)
        legs.append(
            models.QueryRequest(
                query=sparse,
                using=SPARSE_VECTOR,
                filter=query_filter,
                limit=query.leg_limit,
                with_payload=True,
                with_vector=False,
            )
        )
    if query.late is not None:
        legs.append(_late_request(legs, query, query_filter))
    return legs


def _late_request(
    legs: Sequence[models.QueryRequest], query: HybridQuery, query_filter: models.Filter | None
) -> models.QueryRequest:
    """MaxSim over every candidate of the legs (see ``EdgeChunkStore``: not Qdrant's RRF,
    whose weighted formula differs from Sieve's and would rescore another candidate set)."""
    assert query.late is not None
    prefetch = [
        models.Prefetch(query=leg.query, using=leg.using, filter=query_filter, limit=leg.limit)
        for leg in legs
    ]
    return models.QueryRequest(
        query=late_rows(query.late),
        using=LATE_VECTOR,
        prefetch=prefetch,
        filter=query_filter,
        limit=sum(leg.limit or 0 for leg in legs),
        with_payload=False,
        with_vector=False,
    )


def hits_from_responses(
    query: HybridQuery, responses: Sequence[models.QueryResponse]
) -> list[ScoredHit]:
    """Fuse the legs' responses into scored hits (then the late rank, if asked for)."""
    payloads: dict[str, dict[str, Any] | None] = {}
    legs: list[list[LegHit]] = []
    leg_responses = responses[:-1] if query.late is not None else responses
    for response in leg_responses:
        hits: list[LegHit] = []
        for point in response.points:
            pid = str(point.id)
            payloads[pid] = point.payload
            hits.append((pid, point.score))
        legs.append(hits)
    fused = fuse_legs(
        query.mode,
        legs[0] if query.mode is not QueryMode.SPARSE else [],
        legs[-1] if query.mode is not QueryMode.DENSE else [],
        weights=query.weights,
        k=query.rrf_k,
        limit=query.limit,
    )
    recalled = scored_hits(fused, payloads.__getitem__)
    if query.late is None:
        return recalled
    late = {str(point.id): point.score for point in responses[-1].points}
    return fuse_late(recalled, late, query.late_fusion)


def chunk_points(ids: Sequence[str], records: Sequence[models.Record]) -> list[ChunkPoint]:
    """Retrieved records as points, in the order of ``ids``; missing ids left out."""
    by_id = {str(r.id): r for r in records}
    out: list[ChunkPoint] = []
    for pid in ids:
        record = by_id.get(pid)
        if record is None:
            continue
        vectors = record.vector if isinstance(record.vector, dict) else {}
        dense = vectors.get(DENSE_VECTOR)
        sparse = vectors.get(SPARSE_VECTOR)
        late = late_from_stored(vectors.get(LATE_VECTOR))
        out.append(
            ChunkPoint.model_construct(
                id=pid,
                dense=dense_list(dense),
                sparse=SparseVec.model_construct(indices=sparse.indices, values=sparse.values)
                if isinstance(sparse, models.SparseVector)
                else None,
                payload=payload_from_stored(record.payload),
                late=late,
            )
        )
    return out


def mean_late_tokens(records: Sequence[models.Record]) -> float | None:
    """Mean token vectors of scrolled records (None: none stored)."""
    return late_mean_tokens(
        [r.vector.get(LATE_VECTOR) for r in records if isinstance(r.vector, dict)]
    )


def stored_chunks(records: Sequence[models.Record]) -> list[StoredChunk]:
    """Scrolled records as stored chunks."""
    return [StoredChunk(id=str(r.id), payload=payload_from_stored(r.payload)) for r in records]


def scrolled_points(records: Sequence[models.Record]) -> list[ChunkPoint]:
    """Scrolled records (with vectors) as points."""
    return chunk_points([str(r.id) for r in records], records)


def _non_empty(chunk_filter: ChunkFilter) -> models.Filter:
    qdrant_filter = to_qdrant_filter(chunk_filter)
    if qdrant_filter is None:
        raise InvalidInput("refusing to delete by an empty filter (it matches every point)")
    return qdrant_filter


def _by_chunk_no(chunks: list[StoredChunk]) -> list[StoredChunk]:
    return sorted(chunks, key=lambda c: c.payload.chunk_no)


def _not_found(name: str) -> NotFound:
    return NotFound(f"collection {name!r} does not exist")


# ---------------------------------------------------------------- sync


class QdrantChunkStore:
    """``ChunkStore`` on a Qdrant server (or qdrant-client's local mode in tests)."""

    def __init__(self, client: QdrantClient) -> None:
        self._client = client

    def create_collection(self, spec: StoreCollectionSpec) -> None:
        """Create the collection and its payload indexes; drop it again if that fails."""
        dense, sparse = collection_config(spec)
        with _qdrant_errors(spec.name):
            if self._client.collection_exists(spec.name):
                raise Conflict(f"collection {spec.name!r} already exists")
            self._client.create_collection(
                spec.name, vectors_config=dense, sparse_vectors_config=sparse
            )
        try:
            with _qdrant_errors(spec.name), _quiet_local_index_warning():
                for field, schema in payload_index_schemas():
                    self._client.create_payload_index(spec.name, field, schema, wait=True)
        except SieveError:
            with contextlib.suppress(Exception):
                self._client.delete_collection(spec.name)
            raise

    def drop_collection(self, name: str) -> None:
        """Delete a collection and all its points."""
        with _qdrant_errors(name):
            if not self._client.delete_collection(name):
                raise _not_found(name)

    def collection_exists(self, name: str) -> bool:
        """True if the collection exists."""
        with _qdrant_errors(name):
            return self._client.collection_exists(name)

    def upsert(self, name: str, points: Sequence[ChunkPoint]) -> None:
        """Insert or replace points by id; waits until they are applied."""
        structs = to_point_structs(points)
        with _qdrant_errors(name):
            self._client.upsert(name, structs, wait=True)

    def get(self, name: str, ids: Sequence[str]) -> list[ChunkPoint]:
        """The points with these ids, in the order asked; missing ids are left out."""
        wanted = [canonical_id(i) for i in ids]
        with _qdrant_errors(name):
            records = self._client.retrieve(name, wanted, with_payload=True, with_vectors=True)
        return chunk_points(wanted, records)

    def count(self, name: str, filter: ChunkFilter | None = None) -> int:
        """Exact number of points matching ``filter``."""
        with _qdrant_errors(name):
            return self._client.count(name, to_qdrant_filter(filter), exact=True).count

    def delete_document(self, name: str, document_id: str) -> None:
        """Delete every chunk of one document."""
        self.delete_by_filter(name, document_filter(document_id))

    def delete_by_filter(self, name: str, filter: ChunkFilter) -> None:
        """Delete the points matching a non-empty filter."""
        selector = models.FilterSelector(filter=_non_empty(filter))
        with _qdrant_errors(name):
            self._client.delete(name, selector, wait=True)

    def list_document_chunks(self, name: str, document_id: str) -> list[StoredChunk]:
        """Every chunk of one document, ordered by ``chunk_no``."""
        doc = to_qdrant_filter(document_filter(document_id))
        chunks: list[StoredChunk] = []
        offset: models.ExtendedPointId | None = None
        with _qdrant_errors(name):
            while True:
                records, offset = self._client.scroll(
                    name, doc, limit=_SCROLL_PAGE, offset=offset, with_payload=True
                )
                chunks.extend(stored_chunks(records))
                if offset is None:
                    return _by_chunk_no(chunks)

    def document_points(self, name: str, document_id: str) -> list[ChunkPoint]:
        """Every chunk of one document with its vectors, ordered by ``chunk_no``."""
        doc = to_qdrant_filter(document_filter(document_id))
        points: list[ChunkPoint] = []
        offset: models.ExtendedPointId | None = None
        with _qdrant_errors(name):
            while True:
                records, offset = self._client.scroll(
                    name,
                    doc,
                    limit=_SCROLL_PAGE,
                    offset=offset,
                    with_payload=True,
                    with_vectors=True,
                )
                points.extend(scrolled_points(records))
                if offset is None:
                    return sorted(points, key=lambda p: p.payload.chunk_no)

    def query(self, name: str, query: HybridQuery) -> list[ScoredHit]:
        """Run the legs with one ``query_batch_points`` call and fuse them client-side."""
        requests = leg_requests(query)
        with _qdrant_errors(name):
            responses = self._client.query_batch_points(name, requests)
        return hits_from_responses(query, responses)

    def late_tokens(self, name: str, *, sample: int = 64) -> float | None:
        """Mean token vectors per chunk over up to ``sample`` points (None: none stored)."""
        with _qdrant_errors(name):
            records, _ = self._client.scroll(
                name, limit=sample, with_payload=False, with_vectors=[LATE_VECTOR]
            )
        return mean_late_tokens(records)

    def optimize(self, name: str) -> None:
        """No-op: the server builds its indexes in the background."""
        if not self.collection_exists(name):
            raise _not_found(name)

    def close(self) -> None:
        """Close the client."""
        with _qdrant_errors():
            self._client.close()


# ---------------------------------------------------------------- async


class AsyncQdrantChunkStore:
    """``AsyncChunkStore`` on a Qdrant server through ``AsyncQdrantClient``."""

    def __init__(self, client: AsyncQdrantClient) -> None:
        self._client = client

    async def create_collection(self, spec: StoreCollectionSpec) -> None:
        """Create the collection and its payload indexes; drop it again if that fails."""
        dense, sparse = collection_config(spec)
        with _qdrant_errors(spec.name):
            if await self._client.collection_exists(spec.name):
                raise Conflict(f"collection {spec.name!r} already exists")
            await self._client.create_collection(
                spec.name, vectors_config=dense, sparse_vectors_config=sparse
            )
        try:
            with _qdrant_errors(spec.name), _quiet_local_index_warning():
                for field, schema in payload_index_schemas():
                    await self._client.create_payload_index(spec.name, field, schema, wait=True)
        except SieveError:
            with contextlib.suppress(Exception):
                await self._client.delete_collection(spec.name)
            raise

    async def drop_collection(self, name: str) -> None:
        """Delete a collection and all its points."""
        with _qdrant_errors(name):
            if not await self._client.delete_collection(name):
                raise _not_found(name)

    async def collection_exists(self, name: str) -> bool:
        """True if the collection exists."""
        with _qdrant_errors(name):
            return await self._client.collection_exists(name)

    async def upsert(self, name: str, points: Sequence[ChunkPoint]) -> None:
        """Insert or replace points by id; waits until they are applied."""
        structs = to_point_structs(points)
        with _qdrant_errors(name):
            await self._client.upsert(name, structs, wait=True)

    async def get(self, name: str, ids: Sequence[str]) -> list[ChunkPoint]:
        """The points with these ids, in the order asked; missing ids are left out."""
        wanted = [canonical_id(i) for i in ids]
        with _qdrant_errors(name):
            records = await self._client.retrieve(
                name, wanted, with_payload=True, with_vectors=True
            )
        return chunk_points(wanted, records)

    async def count(self, name: str, filter: ChunkFilter | None = None) -> int:
        """Exact number of points matching ``filter``."""
        with _qdrant_errors(name):
            return (await self._client.count(name, to_qdrant_filter(filter), exact=True)).count

    async def delete_document(self, name: str, document_id: str) -> None:
        """Delete every chunk of one document."""
        await self.delete_by_filter(name, document_filter(document_id))

    async def delete_by_filter(self, name: str, filter: ChunkFilter) -> None:
        """Delete the points matching a non-empty filter."""
        selector = models.FilterSelector(filter=_non_empty(filter))
        with _qdrant_errors(name):
            await self._client.delete(name, selector, wait=True)

    async def list_document_chunks(self, name: str, document_id: str) -> list[StoredChunk]:
        """Every chunk of one document, ordered by ``chunk_no``."""
        doc = to_qdrant_filter(document_filter(document_id))
        chunks: list[StoredChunk] = []
        offset: models.ExtendedPointId | None = None
        with _qdrant_errors(name):
            while True:
                records, offset = await self._client.scroll(
                    name, doc, limit=_SCROLL_PAGE, offset=offset, with_payload=True
                )
                chunks.extend(stored_chunks(records))
                if offset is None:
                    return _by_chunk_no(chunks)

    async def document_points(self, name: str, document_id: str) -> list[ChunkPoint]:
        """Every chunk of one document with its vectors, ordered by ``chunk_no``."""
        doc = to_qdrant_filter(document_filter(document_id))
        points: list[ChunkPoint] = []
        offset: models.ExtendedPointId | None = None
        with _qdrant_errors(name):
            while True:
                records, offset = await self._client.scroll(
                    name,
                    doc,
                    limit=_SCROLL_PAGE,
                    offset=offset,
                    with_payload=True,
                    with_vectors=True,
                )
                points.extend(scrolled_points(records))
                if offset is None:
                    return sorted(points, key=lambda p: p.payload.chunk_no)

    async def query(self, name: str, query: HybridQuery) -> list[ScoredHit]:
        """Run the legs with one ``query_batch_points`` call and fuse them client-side."""
        requests = leg_requests(query)
        with _qdrant_errors(name):
            responses = await self._client.query_batch_points(name, requests)
        return hits_from_responses(query, responses)

    async def late_tokens(self, name: str, *, sample: int = 64) -> float | None:
        """Mean token vectors per chunk over up to ``sample`` points (None: none stored)."""
        with _qdrant_errors(name):
            records, _ = await self._client.scroll(
                name, limit=sample, with_payload=False, with_vectors=[LATE_VECTOR]
            )
        return mean_late_tokens(records)

    async def optimize(self, name: str) -> None:
        """No-op: the server builds its indexes in the background."""
        if not await self.collection_exists(name):
            raise _not_found(name)

    async def close(self) -> None:
        """Close the client."""
        with _qdrant_errors():
            await self._client.close()
