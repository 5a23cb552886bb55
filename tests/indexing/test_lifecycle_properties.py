"""Property: no interleaving of uploads, replaces, deletes, cancels, task steps (run in any
order, repeated or lost with a crashed worker) and recovery passes ends with a deleted
document's points in the store, an indexed document with the wrong points, or a job that
never finishes.

Real Redis (the lifecycle script), the real store writer over a real Edge store, the real
runner and its real parser and chunker; only embedding is replaced by a deterministic
function (the property is about the lifecycle, not about vectors), and the task queue is an
in-memory implementation of the ``TaskQueue`` port whose delivery order the test controls.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.errors import NotFound
from core.ids import point_id
from core.types import ChunkFilter, ChunkPayload, ChunkPoint, FieldEquals, StoreCollectionSpec
from indexing.accept import AcceptLimits, UploadItem, accept
from indexing.changes import cancel_job, delete_document
from indexing.heartbeat import Heartbeat
from indexing.messages import DeleteWrite, IngestTask, ReplaceWrite
from indexing.queue import Pending
from indexing.reaper import reap, recover
from indexing.records import JOB_TERMINAL, CollectionRecord, DocStatus
from indexing.runner import IndexingRunner
from indexing.state_store import Owner, StateStore
from indexing.writes import StoreWriter
from ingest.blob_store import LocalBlobStore
from ingest.documents import FailureReason, ParseFailure
from ingest.embeddings_client import EmbeddingsClient
from ingest.pipeline import ChunkedDocument, DocumentPipeline, PreparedDocument
from ingest.tokenizer import load_bge_small_tokenizer
from retriever.store import ChunkStore
from tests.indexing.stores import STORE_KINDS, chunk_store

TENANT, COLL = "t", "c"
STORE = "t-c"
DOCS = ["a", "b", "c"]
LIMITS = AcceptLimits(max_documents=100, task_batch_docs=2, task_batch_bytes=1 << 20)


def _text(doc: str, content: int) -> str:
    # Contents of different lengths, so a replace changes the number of chunks.
    words = " ".join(f"{doc}{content}w{i}" for i in range(40 + 170 * content))
    return f"{doc} version {content}. {words}"


class _Pipeline:
    """The real parser and chunker; embedding by a fixed function of the chunk, of the asked
    size (at least 4)."""

    def __init__(self) -> None:
        self._real = DocumentPipeline(cast(EmbeddingsClient, None), load_bge_small_tokenizer())

    def extract_and_chunk(
        self, data: bytes, *, source: str, record: bool, document_id: str
    ) -> object:
        return self._real.extract_and_chunk(
            data, source=source, record=record, document_id=document_id
        )

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
        reuse: object = None,
    ) -> list[PreparedDocument]:
        # Embeds every chunk: the writer's reuse path is tested in tests/indexing/test_reuse.py.
        del embedding_model, bm25_avg_len, late_model, late_dimension, reuse
        out = []
        for chunked, doc_id in items:
            points = [
                ChunkPoint(
                    id=point_id(store_name, doc_id, c.chunk_no),
                    # Of the asked size (a re-index's new model may have another).
                    dense=[1.0, float(c.chunk_no), 0.5, float(len(c.text) % 7)]
                    + [0.25] * (dimension - 4),
                    payload=ChunkPayload(
                        document_id=doc_id,
                        content_hash=chunked.document.content_sha256,
                        chunk_no=c.chunk_no,
                        text=c.text,
                    ),
                )
                for c in chunked.chunks
            ]
            out.append(PreparedDocument(points=points, title=None, pages=None))
        return out


@dataclass
class _Queue:
    """The TaskQueue port in memory; the test picks what runs next."""

    ingest: list[IngestTask] = field(default_factory=list)
    writes: list[ReplaceWrite | DeleteWrite] = field(default_factory=list)
    # Delivered to a worker that died before acknowledging (what the broker still holds).
    held: dict[str, IngestTask] = field(default_factory=dict)

    def send_ingest(self, task: IngestTask, *, countdown_s: float = 0) -> None:
        self.ingest.append(task)

    def send_write(self, write: ReplaceWrite | DeleteWrite, *, countdown_s: float = 0) -> None:
        self.writes.append(write)

    def pending(self) -> Pending:
        out = Pending()
        for task in [*self.ingest, *self.held.values()]:
            out.ingest |= {(task.tenant, task.collection, d.id, d.version) for d in task.docs}
        for w in self.writes:
            if isinstance(w, DeleteWrite):
                out.writes.add((w.tenant, w.collection, w.doc.id, w.doc.version))
            else:
                out.writes |= {(w.tenant, w.collection, d.id, d.version) for d in w.docs}
        return out

    def delivered(self, older_than_s: float) -> list[tuple[str, IngestTask]]:
        return list(self.held.items())

    def redeliver(self, tag: str) -> bool:
        task = self.held.pop(tag, None)
        if task is not None:
            self.ingest.append(task)
        return task is not None


Workers = tuple[_Queue, LocalBlobStore, Heartbeat, IndexingRunner, StoreWriter]


def _workers(state: StateStore, store: ChunkStore, root: Path) -> Workers:
    """The in-memory queue, the blob store, one live heartbeat, a runner and a store writer."""
    queue = _Queue()
    blobs = LocalBlobStore(root / "blobs")
    beat = Heartbeat(state, "live", ttl_s=600, every_s=60)
    runner = IndexingRunner(
        state, blobs, cast(DocumentPipeline, _Pipeline()), queue, heartbeat=beat
    )
    return queue, blobs, beat, runner, StoreWriter(state, store, queue, heartbeat=beat)


@pytest.fixture(scope="module", params=STORE_KINDS)
def world(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[StateStore, ChunkStore, Path]]:
    root = tmp_path_factory.mktemp("props")
    state = StateStore.from_url(redis_url)
    with chunk_store(request.param, root) as (store, _):
        yield state, store, root
    state.close()


_OPS = st.one_of(
    st.tuples(st.just("upload"), st.sampled_from(DOCS), st.integers(0, 2)),
    # A re-upload that fails: in the worker (empty) or at upload (an entry refused).
    st.tuples(st.just("bad"), st.sampled_from(DOCS), st.integers(0, 1)),
    st.tuples(st.just("delete"), st.sampled_from(DOCS), st.just(0)),
    st.tuples(st.just("cancel"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("ingest"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("write"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("duplicate"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("crash"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("reap"), st.just(0), st.just(0)),
    st.tuples(st.just("recover"), st.just(0), st.just(0)),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(_OPS, min_size=1, max_size=25), rng=st.randoms(use_true_random=False))
# An indexed document re-uploaded with an entry that fails in the worker, then at upload,
# then while a good re-upload is in flight (the served version is the first one).
@example(
    ops=[("upload", "a", 0), ("ingest", 0, 0), ("write", 0, 0), ("bad", "a", 0)],
    rng=random.Random(0),
)
@example(
    ops=[("upload", "a", 1), ("ingest", 0, 0), ("write", 0, 0), ("bad", "a", 1)],
    rng=random.Random(0),
)
@example(
    ops=[
        *[("upload", "a", 0), ("ingest", 0, 0), ("write", 0, 0), ("upload", "a", 2)],
        *[("ingest", 0, 0), ("bad", "a", 0), ("write", 0, 0), ("cancel", 0, 0)],
    ],
    rng=random.Random(0),
)
def test_no_interleaving_leaves_a_deleted_point_or_an_unfinished_job(
    world: tuple[StateStore, ChunkStore, Path],
    ops: list[tuple[str, str | int, int]],
    rng: random.Random,
) -> None:
    state, store, root = world
    state.raw().flushdb()
    if store.collection_exists(STORE):
        store.drop_collection(STORE)
    store.create_collection(StoreCollectionSpec(name=STORE, dense_size=4, sparse=True))
    state.create_collection(
        CollectionRecord(tenant=TENANT, name=COLL, embedding_model="m", dimension=4, store=STORE)
    )
    queue, blobs, _, runner, writer = _workers(state, store, root)
    latest: dict[str, int | None] = {}  # the content each document should end with
    # What it may end with instead: a failed or cancelled re-upload puts back the version
    # indexed when it began, any one uploaded since the last delete.
    allowed: dict[str, set[int]] = {d: set() for d in DOCS}
    uploaded: dict[str, set[int]] = {d: set() for d in DOCS}
    latest_job: dict[str, str] = {}
    failed_once: set[str] = set()
    jobs: list[str] = []
    crashes = 0

    def run_ingest(i: int) -> None:
        if queue.ingest:
            runner.run(queue.ingest.pop(i % len(queue.ingest)), last_attempt=False)

    def run_write(i: int) -> None:
        if queue.writes:
            writer.apply(queue.writes.pop(i % len(queue.writes)))

    for op, arg, content in ops:
        if op == "upload":
            doc = str(arg)
            item = UploadItem(doc_id=doc, source=doc, data=_text(doc, content).encode())
            out = accept(state, blobs, queue, LIMITS, tenant=TENANT, collection=COLL, items=[item])
            jobs.append(out.job_id)
            latest[doc] = content
            latest_job[doc] = out.job_id
            uploaded[doc].add(content)
            allowed[doc] = {content}
        elif op == "bad":
            doc = str(arg)
            failure = ParseFailure(source=doc, reason=FailureReason.CORRUPT_FILE, message="x")
            item = UploadItem(
                doc_id=doc, source=doc, data=b"", failure=failure if content else None
            )
            out = accept(state, blobs, queue, LIMITS, tenant=TENANT, collection=COLL, items=[item])
            jobs.append(out.job_id)
            allowed[doc] |= uploaded[doc]
            failed_once.add(doc)
        elif op == "delete":
            doc = str(arg)
            if latest.get(doc) is None and doc not in failed_once:
                with pytest.raises(NotFound):
                    delete_document(state, queue, tenant=TENANT, collection=COLL, doc_id=doc)
            elif latest.get(doc) is None:
                with contextlib.suppress(NotFound):  # a failed record, if one was left
                    delete_document(state, queue, tenant=TENANT, collection=COLL, doc_id=doc)
            else:
                delete_document(state, queue, tenant=TENANT, collection=COLL, doc_id=doc)
                latest[doc] = None
                uploaded[doc], allowed[doc] = set(), set()
        elif op == "cancel" and jobs:
            job_id = jobs[int(arg) % len(jobs)]
            cancel_job(state, tenant=TENANT, job_id=job_id)
            for doc in DOCS:
                if latest_job.get(doc) == job_id:
                    allowed[doc] |= uploaded[doc]
        elif op == "ingest":
            run_ingest(int(arg))
        elif op == "write":
            run_write(int(arg))
        elif op == "duplicate" and queue.ingest:
            queue.ingest.append(queue.ingest[int(arg) % len(queue.ingest)])
        elif op == "crash" and queue.ingest:
            # A worker takes the message, claims its documents and dies (kill -9).
            task = queue.ingest.pop(int(arg) % len(queue.ingest))
            crashes += 1
            for d in task.docs[: rng.randint(0, len(task.docs))]:
                state.transition(
                    TENANT,
                    COLL,
                    d.id,
                    DocStatus.PARSING,
                    version=d.version,
                    from_=[DocStatus.QUEUED],
                    owner=Owner.claim(f"dead-{crashes}"),
                )
            queue.held[f"tag-{crashes}"] = task
        elif op == "reap":
            reap(state, queue, max_crashes=100, orphan_after_s=0)
        elif op == "recover":
            recover(state, queue)

    # Drain: run everything left, in a random order, with the reaper's passes between.
    for _ in range(500):
        if queue.ingest and (not queue.writes or rng.random() < 0.5):
            run_ingest(rng.randrange(len(queue.ingest)))
        elif queue.writes:
            run_write(rng.randrange(len(queue.writes)))
        else:
            reap(state, queue, max_crashes=100, orphan_after_s=0)
            if not (queue.ingest or queue.writes):
                # What the broker still holds comes back after its visibility timeout.
                queue.ingest += queue.held.values()
                queue.held.clear()
            if not (queue.ingest or queue.writes):
                break
    assert not queue.ingest
    assert not queue.writes
    assert not queue.held

    for doc in DOCS:
        record = state.find_document(TENANT, COLL, doc)
        have = store.count(STORE, ChunkFilter(must=[FieldEquals(key="document_id", value=doc)]))
        if record is None:
            assert have == 0, f"{doc}: deleted, yet {have} points remain"
            assert latest.get(doc) is None
            continue
        assert record.status in (DocStatus.INDEXED, DocStatus.CANCELLED, DocStatus.FAILED), record
        if record.status is not DocStatus.INDEXED:
            # Never a failed or cancelled record with live points.
            assert have == 0, f"{doc}: {record.status}, yet {have} points are live"
            continue
        assert latest[doc] is not None
        chunks = [
            p.payload for p in store.get(STORE, [point_id(STORE, doc, i) for i in range(have)])
        ]
        assert len(chunks) == have == record.chunk_count
        assert any(all(f"{doc}{c}w" in p.text for p in chunks) for c in allowed[doc]), (
            "stale content"
        )
    for job_id in jobs:
        view = state.get_job(TENANT, job_id)
        assert view.documents is not None
        assert set(view.documents.values()) <= JOB_TERMINAL, view
        assert view.state.value in ("completed", "completed_with_errors", "cancelled"), view
