"""kill -9 of the API (where snapshots and restores run) in the middle of a snapshot and of
a restore, on real processes (Redis, API, worker, hub: ``procstack``).

After the restart nothing is left half-done: the snapshot ends ``failed``
(``snapshot_interrupted``) with no file served and no scratch left, and a fresh one round-
trips; the restore leaves no collection, no record, marker, index or counter, no store
collection and no scratch, and the same restore then succeeds. (The blobs it wrote are
content-addressed and shared: with no record of it left, none names them, and the blob
sweep deletes them after its retention, ``indexing.blob_gc``.)

The collection is made large (a few thousand documents, copied from a small real one in
its bundle) so that both are caught mid-way; each test checks it was.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.ids import point_id
from indexing.bundle import BundleWriter, open_bundle
from indexing.records import CollectionRecord
from ingest.blob_store import blob_key
from tests.indexing.procstack import ProcStack, proc_stack

pytestmark = pytest.mark.slow

TENANT = "team-a"
COPIES = 1300  # x 3 seed documents: ~4,000 documents, a few seconds to snapshot
SEED = [
    ("photo", "Photosynthesis turns sunlight, water and CO2 into sugar in the leaves."),
    ("espresso", "Espresso is brewed by forcing hot water through finely ground coffee."),
    ("tides", "Tides are caused by the gravity of the moon and, less, of the sun."),
]
# A stored blob the bundle carries (as it carries page images), so a restore writes blobs.
BLOB = b"a page image's bytes, as a bundle carries them " * 20


@pytest.fixture(scope="module")
def stack(hub_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcStack]:
    root = tmp_path_factory.mktemp("bundle-faults")
    with proc_stack(hub_url, root, SIEVE_BUNDLE_DIR=str(root / "bundles")) as handle:
        yield handle


def _wait(what: str, done: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s}s"
        time.sleep(0.2)


def _snapshot(c: httpx.Client, name: str) -> str:
    resp = c.post(f"/v1/collections/{name}/snapshot")
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def _finished(c: httpx.Client, snapshot_id: str, timeout_s: float = 120) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def done() -> bool:
        out.update(c.get(f"/v1/snapshots/{snapshot_id}").json())
        return bool(out["state"] != "running")

    _wait(f"snapshot {snapshot_id}", done, timeout_s)
    return out


def _download(c: httpx.Client, snapshot_id: str, path: Path) -> Path:
    resp = c.get(f"/v1/snapshots/{snapshot_id}/file")
    assert resp.status_code == 200, resp.text
    path.write_bytes(resp.content)
    return path


def _restore(stack: ProcStack, bundle: Path, name: str) -> httpx.Response:
    with stack.client() as c, bundle.open("rb") as body:
        return c.post("/v1/collections/restore", params={"name": name}, content=body)


def _inflate(seed: Path, out: Path, scratch: Path) -> tuple[int, int]:
    """A bundle of ``COPIES`` copies of every document of ``seed`` (their own ids, point
    ids and payloads), plus one blob; returns its documents and chunks."""
    src = open_bundle(seed, scratch, max_expanded_bytes=1 << 30)
    try:
        rec = CollectionRecord.model_validate(src.collection["record"])
        chunks: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for chunk in src.chunks():
            chunks[chunk["payload"]["document_id"]].append(chunk)
        docs = list(src.documents())
        writer = BundleWriter(
            scratch, dense_dimension=rec.dimension, late_dimension=rec.late_dimension
        )
        try:
            for n in range(COPIES):
                for doc in docs:
                    doc_id = f"{doc['id']}-{n}"
                    points = [
                        {
                            **chunk,
                            "id": point_id(rec.point_ns, doc_id, chunk["payload"]["chunk_no"]),
                            "payload": {**chunk["payload"], "document_id": doc_id},
                        }
                        for chunk in chunks[doc["id"]]
                    ]
                    writer.add_document({**doc, "id": doc_id}, points)
            writer.add_blob(blob_key(BLOB), BLOB)
            counts = {**src.manifest.counts, "documents": writer.documents}
            counts |= {"chunks": writer.chunks, "blobs": len(writer.blobs)}
            writer.write(out, src.collection, src.manifest.model_copy(update={"counts": counts}))
            return writer.documents, writer.chunks
        finally:
            writer.close()
    finally:
        src.close()


@pytest.fixture(scope="module")
def big(stack: ProcStack, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """Collection ``big`` (restored from an inflated bundle of a real 3-document one) and
    that bundle: (path, documents, chunks)."""
    root = tmp_path_factory.mktemp("bundles")
    with stack.client() as c:
        assert c.post("/v1/collections", json={"name": "seed"}).status_code == 201
        body = {"documents": [{"id": i, "text": t} for i, t in SEED]}
        job = c.post("/v1/collections/seed/documents", json=body).json()["job_id"]
        stack.wait_jobs([job])
        snap = _snapshot(c, "seed")
        assert _finished(c, snap)["state"] == "completed"
        seed = _download(c, snap, root / "seed.sieve")
    bundle = root / "big.sieve"
    documents, chunks = _inflate(seed, bundle, root)
    resp = _restore(stack, bundle, "big")
    assert resp.status_code == 201, resp.text
    assert (resp.json()["documents"], resp.json()["chunks"]) == (documents, chunks)
    return bundle, documents, chunks


def _work_dirs(stack: ProcStack) -> list[Path]:
    return sorted((stack.root / "bundles").glob(".work-*"))


def test_kill_9_mid_snapshot_fails_it_serves_no_file_and_a_new_one_round_trips(
    stack: ProcStack, big: tuple[Path, int, int], tmp_path: Path
) -> None:
    _, documents, chunks = big
    bundles = stack.root / "bundles"
    with stack.client() as c:
        snap = _snapshot(c, "big")

        def halfway() -> bool:  # the writer has documents down, and far from all of them
            files = list(bundles.glob(".work-*/bundle-*/documents.jsonl"))
            return bool(files) and files[0].stat().st_size > 20_000

        _wait("the snapshot writing documents", halfway)
        stack.pause("api")
    state = stack.state()
    try:
        raw = state.raw()
        (owner,) = [d.name.removeprefix(".work-") for d in _work_dirs(stack)]
        assert not (bundles / f"{snap}.sieve").exists()  # caught mid-way: no file yet
        assert raw.hexists("sieve:snapshots-running", snap)
        stack.kill("api")
        stack.start_api()
        with stack.client() as c:
            view = _finished(c, snap, timeout_s=30)  # the dead owner expires in seconds
            assert view["state"] == "failed", view
            assert view["error"]["code"] == "snapshot_interrupted"
            resp = c.get(f"/v1/snapshots/{snap}/file")
            assert resp.status_code == 409, resp.text
            assert resp.json()["error"]["code"] == "snapshot_not_ready"

            # The lifecycle loop records it failed, and the dead process's scratch goes.
            def swept() -> bool:
                dead = bundles / f".work-{owner}"
                return not raw.hexists("sieve:snapshots-running", snap) and not dead.exists()

            _wait("the dead snapshot swept", swept, timeout_s=30)
            stored = raw.get(f"sieve:snapshot:{TENANT}:{snap}")
            assert stored is not None
            assert '"state":"failed"' in stored
            assert not list(bundles.glob(f"*{snap}*"))  # no file, no partial file
            # A fresh snapshot completes and restores to the same collection.
            again = _snapshot(c, "big")
            done = _finished(c, again)
            assert done["state"] == "completed", done
            assert (done["documents"], done["chunks"]) == (documents, chunks)
            bundle = _download(c, again, tmp_path / "again.sieve")
        resp = _restore(stack, bundle, "big-again")
        assert resp.status_code == 201, resp.text
        with stack.client() as c:
            copy = c.get("/v1/collections/big-again").json()
            assert (copy["documents"], copy["chunks"]) == (documents, chunks)
            query = {"query": "why does the sea rise", "rerank": False, "top_n": 5}
            hits = [
                c.post(f"/v1/collections/{name}/query", json=query).json()["results"]
                for name in ("big", "big-again")
            ]
            # The copies tie (same vectors): the same scores, whichever copies hold them.
            scores = [[round(h["scores"]["fused"], 4) for h in got] for got in hits]
            assert scores[0] == scores[1]
            assert len(scores[0]) == 5
    finally:
        state.close()


def _restore_in_background(
    stack: ProcStack, bundle: Path, name: str
) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def run() -> None:
        try:
            out.append(_restore(stack, bundle, name))
        except httpx.HTTPError as exc:  # the API was killed under it
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _keys_of(raw: Any, name: str) -> list[str]:
    return sorted(
        {
            *raw.scan_iter(match=f"sieve:*:{TENANT}:{name}"),
            *raw.scan_iter(match=f"sieve:*:{TENANT}:{name}:*"),
        }
    )


@pytest.mark.parametrize("phase", ["points", "documents"])
def test_kill_9_mid_restore_leaves_nothing_and_the_restore_can_be_repeated(
    stack: ProcStack, big: tuple[Path, int, int], phase: str
) -> None:
    bundle, documents, chunks = big
    name = f"half-{phase}"
    field = f"{TENANT}\n{name}"
    state = stack.state()
    try:
        raw = state.raw()
        thread, out = _restore_in_background(stack, bundle, name)

        def reached() -> bool:
            if not raw.hexists("sieve:restores", field):
                return False
            return phase == "points" or raw.zcard(f"sieve:docorder:{TENANT}:{name}") > 0

        deadline = time.monotonic() + 60
        while not reached():
            assert not out, f"the restore ended before the kill: {out}"
            assert time.monotonic() < deadline, "the restore never started"
            time.sleep(0.002)
        stack.pause("api")
        entry = raw.hget("sieve:restores", field)
        assert entry is not None, "caught after the restore committed"
        assert raw.hget(f"sieve:collections:{TENANT}", name) is None  # not visible yet
        rec = CollectionRecord.model_validate_json(json.loads(entry)["record"])
        (dead,) = _work_dirs(stack)  # the scratch of the process about to die
        stack.kill("api")
        thread.join(timeout=30)
        assert out, "the restore request did not end with the API"
        assert not isinstance(out[0], httpx.Response), out
        stack.start_api()
        _wait(
            "the dead restore removed",
            lambda: raw.hlen("sieve:restores") == 0 and not dead.exists(),
            timeout_s=30,
        )
        with stack.client() as c:
            resp = c.get(f"/v1/collections/{name}")
            assert resp.status_code == 404, resp.text
        assert _keys_of(raw, name) == []  # no record, marker, index or counter left
        assert not (stack.root / "qdrant" / rec.store_name).exists()  # no points left
        # The same restore, repeated, creates the whole collection.
        resp = _restore(stack, bundle, name)
        assert resp.status_code == 201, resp.text
        with stack.client() as c:
            copy = c.get(f"/v1/collections/{name}").json()
            assert (copy["documents"], copy["chunks"]) == (documents, chunks)
            assert copy["documents_by_status"] == {"indexed": documents}
    finally:
        state.close()
