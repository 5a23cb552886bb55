"""Snapshots and restores as the API runs them: in this process, which holds the store.

A snapshot is a job: its record lives in Redis (``sieve:snapshot:<tenant>:<id>``, for
``SIEVE_BUNDLE_RETENTION_S``) and its file under ``SIEVE_BUNDLE_DIR``. While it runs it is
listed in ``sieve:snapshots-running`` under a lease of this process's heartbeat
(``indexing.heartbeat``, ``SIEVE_WORKER_OWNER_TTL_S`` as a worker's), retired when the job
ends. A snapshot whose process died (kill -9), or whose end could not be recorded, reads as
``failed`` (``snapshot_interrupted``) once that lease expired, and
``recover`` (the lifecycle loop) then records it so and removes its partial file; a
partial file is never under the final name. Each process works in a scratch directory
named by its owner id (``.work-<owner>``), which ``recover`` removes once that owner is
dead; a restore's half-written collection is removed the same way
(``indexing.restore.clear_abandoned_restores``).
Snapshots and restores share ``SIEVE_BUNDLE_MAX_RUNNING`` threads; past that: 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar, cast

from pydantic import ValidationError

from core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    SieveError,
    TooManyRequests,
)
from core.settings import BundleSettings
from indexing.bundle import BundleModels, open_bundle
from indexing.feedback import FeedbackStore
from indexing.heartbeat import Heartbeat
from indexing.restore import RestoreResult, clear_abandoned_restores, restore_bundle
from indexing.snapshot import take_snapshot
from indexing.state_store import StateStore, TenantQuota, redis_errors, state_key
from indexing.webhooks import WebhookEvent, WebhookStore
from ingest.blob_store import BlobStore
from retriever.store import ChunkStore
from services.api.evaluations import EvaluationStore
from services.api.schemas import EvaluationReport
from services.api.schemas_bundles import SnapshotResponse

__all__ = ["BundleService", "RestoreOutcome"]

log = logging.getLogger("sieve.api")

_T = TypeVar("_T")
_SUFFIX = ".sieve"
_WORK = ".work-"
_RUNNING = state_key("snapshots-running")


@dataclass(frozen=True)
class RestoreOutcome:
    """A restore's result and whether it brought an evaluation report."""

    result: RestoreResult
    evaluation: bool


class BundleService:
    """Runs snapshots and restores on a small pool of their own."""

    def __init__(
        self,
        settings: BundleSettings,
        *,
        state: StateStore,
        store: ChunkStore,
        blobs: BlobStore,
        feedback: FeedbackStore | None,
        heartbeat: Heartbeat,
        max_collections: int = 0,
        quota: TenantQuota | None = None,
        webhooks: WebhookStore | None = None,
    ) -> None:
        self.settings = settings
        self.dir = settings.dir
        self._state, self._store, self._blobs, self._feedback = state, store, blobs, feedback
        # This process's owner id: alive while its heartbeat beats, dead with the process;
        # each snapshot and restore runs under a lease of it (retired when the job ends).
        self._heartbeat = heartbeat
        self.owner = heartbeat.owner
        self.work = self.dir / f"{_WORK}{self.owner}"
        self.work.mkdir(parents=True, exist_ok=True)
        self._max_collections, self._quota = max_collections, quota
        self._webhooks = webhooks
        self._pool = ThreadPoolExecutor(settings.max_running, thread_name_prefix="bundles")
        self._lock = threading.Lock()
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        """Wait for running snapshots and restores, then stop the pool."""
        self._pool.shutdown(wait=True)

    # ------------------------------------------------------------ the pool

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        with self._lock:
            if self._running >= self.settings.max_running:
                raise TooManyRequests(
                    f"{self._running} snapshots or restores are running; the limit is "
                    f"{self.settings.max_running} (SIEVE_BUNDLE_MAX_RUNNING)",
                    code="bundles_busy",
                    retry_after=5,
                )
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1

    async def _in_pool(self, fn: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    # ------------------------------------------------------------ snapshots

    def _key(self, tenant: str, snapshot_id: str) -> str:
        return state_key("snapshot", tenant, snapshot_id)

    def _save(self, tenant: str, view: SnapshotResponse) -> None:
        with redis_errors():
            self._state.raw().set(
                self._key(tenant, view.id),
                view.model_dump_json(),
                px=int(self.settings.retention_s * 1000),
            )

    def path_of(self, snapshot_id: str) -> Path:
        """Where a snapshot's file lives."""
        return self.dir / f"{snapshot_id}{_SUFFIX}"

    async def start_snapshot(self, tenant: str, name: str) -> SnapshotResponse:
        """Start a snapshot of ``name`` (returns at once, ``running``).

        Raises:
            NotFound: no such collection.
            TooManyRequests: ``SIEVE_BUNDLE_MAX_RUNNING`` already run.
        """
        await asyncio.to_thread(self._state.get_collection, tenant, name)
        await asyncio.to_thread(self._sweep)
        view = SnapshotResponse(
            id=uuid.uuid4().hex, collection=name, state="running", created_at=time.time()
        )
        slot = self._slot()
        slot.__enter__()
        lease = self._heartbeat.lease()
        try:
            owner = await asyncio.to_thread(lease.__enter__)
            try:
                await asyncio.to_thread(self._list, tenant, view.id, owner)
                await asyncio.to_thread(self._save, tenant, view)
            except BaseException:
                await asyncio.to_thread(lease.__exit__, None, None, None)
                raise
        except BaseException:
            slot.__exit__(None, None, None)
            raise
        task = asyncio.create_task(self._snapshot(tenant, view, slot, lease))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return view

    def _list(self, tenant: str, snapshot_id: str, owner: str) -> None:
        """List the snapshot as running, under the lease ``owner``."""
        entry = json.dumps({"tenant": tenant, "owner": owner})
        with redis_errors():
            self._state.raw().hset(_RUNNING, snapshot_id, entry)

    def _unlist(self, snapshot_id: str) -> None:
        with redis_errors():
            self._state.raw().hdel(_RUNNING, snapshot_id)

    async def _snapshot(
        self,
        tenant: str,
        view: SnapshotResponse,
        slot: contextlib.AbstractContextManager[None],
        lease: contextlib.AbstractContextManager[str],
    ) -> None:
        try:
            done = await self._in_pool(lambda: self._take(tenant, view))
            await asyncio.to_thread(self._save, tenant, done)
            if self._webhooks is not None:  # the bundle is durable: now say so, at least once
                data = done.model_dump(mode="json", include={"id", "collection", "bytes", "file"})
                await asyncio.to_thread(
                    self._webhooks.emit,
                    tenant,
                    view.collection,
                    WebhookEvent.SNAPSHOT_COMPLETED,
                    {"snapshot_id": data.pop("id"), **data},
                )
        except Exception as exc:
            code, message = (
                (exc.code, exc.message) if isinstance(exc, SieveError) else ("internal_error", "")
            )
            if not isinstance(exc, SieveError):
                log.exception("snapshot failed", extra={"snapshot_id": view.id})
            failed = view.model_copy(
                update={
                    "state": "failed",
                    "finished_at": time.time(),
                    "error": {"code": code, "message": message or "the snapshot failed"},
                }
            )
            with contextlib.suppress(SieveError):
                await asyncio.to_thread(self._save, tenant, failed)
        finally:
            slot.__exit__(None, None, None)
            with contextlib.suppress(SieveError):
                await asyncio.to_thread(self._unlist, view.id)
            await asyncio.to_thread(lease.__exit__, None, None, None)

    def _take(self, tenant: str, view: SnapshotResponse) -> SnapshotResponse:
        extras: dict[str, bytes] = {}
        with contextlib.suppress(NotFound):
            report = EvaluationStore(self._state.raw()).get(tenant, view.collection)
            extras["evaluation.json"] = report.model_dump_json().encode()
        result = take_snapshot(
            self.path_of(view.id),
            tenant=tenant,
            name=view.collection,
            state=self._state,
            store=self._store,
            blobs=self._blobs,
            feedback=self._feedback,
            extras=extras,
            scratch=self.work,
        )
        log.info(
            "snapshot completed",
            extra={"snapshot_id": view.id, "bytes": result.bytes, "chunks": result.chunks},
        )
        return view.model_copy(
            update={
                "state": "completed",
                "finished_at": time.time(),
                "bytes": result.bytes,
                "documents": result.documents,
                "chunks": result.chunks,
                "blobs": result.blobs,
                "skipped": result.skipped,
                "file": f"/v1/snapshots/{view.id}/file",
            }
        )

    def get(self, tenant: str, snapshot_id: str) -> SnapshotResponse:
        """The tenant's snapshot (``NotFound`` for another tenant's, or an expired one)."""
        with redis_errors():
            raw = self._state.raw().get(self._key(tenant, snapshot_id))
            entry = self._state.raw().hget(_RUNNING, snapshot_id)
        if raw is None:
            raise NotFound(f"snapshot {snapshot_id!r} does not exist", code="snapshot_not_found")
        view = SnapshotResponse.model_validate_json(raw)
        if view.state == "running" and not self._alive(cast(str | None, entry)):
            return _interrupted(view)
        return view

    def _alive(self, entry: str | None) -> bool:
        """Whether the process that listed a running snapshot still beats."""
        if entry is None:
            return False
        return self._state.owner_alive(str(json.loads(entry).get("owner", "")))

    def recover(self) -> dict[str, int]:
        """Finish what dead processes left (the lifecycle loop runs this): their running
        snapshots are recorded failed and their partial files removed, their half-restored
        collections removed, their scratch directories removed."""
        with redis_errors():
            running = cast(dict[str, str], self._state.raw().hgetall(_RUNNING))
        failed = 0
        for snapshot_id, entry in running.items():
            if self._alive(entry):
                continue
            tenant = str(json.loads(entry).get("tenant", ""))
            with redis_errors():
                raw = self._state.raw().get(self._key(tenant, snapshot_id))
            if raw is not None:
                view = SnapshotResponse.model_validate_json(raw)
                if view.state == "running":
                    self._save(tenant, _interrupted(view))
                    failed += 1
            partial = self.path_of(snapshot_id)
            partial.with_name(f".{partial.name}.partial").unlink(missing_ok=True)
            self._unlist(snapshot_id)
            log.warning("a snapshot's process died", extra={"snapshot_id": snapshot_id})
        restores = clear_abandoned_restores(self._state, self._store, self._feedback)
        scratch = 0
        for work in self.dir.glob(f"{_WORK}*"):
            if work.is_dir() and not self._state.owner_alive(work.name.removeprefix(_WORK)):
                shutil.rmtree(work, ignore_errors=True)
                scratch += 1
        return {"snapshots": failed, "restores": restores, "scratch": scratch}

    def file(self, tenant: str, snapshot_id: str) -> Path:
        """A completed snapshot's file.

        Raises:
            NotFound: no such snapshot, or its file expired.
            Conflict: ``snapshot_not_ready``: still running, or failed.
        """
        view = self.get(tenant, snapshot_id)
        if view.state != "completed":
            raise Conflict(
                f"snapshot {snapshot_id!r} is {view.state}; its file is not available",
                code="snapshot_not_ready",
            )
        path = self.path_of(snapshot_id)
        if not path.is_file():
            raise NotFound(f"snapshot {snapshot_id!r}'s file expired", code="snapshot_not_found")
        return path

    def _sweep(self) -> None:
        """Remove snapshot files (and scratch left by a crash) older than the retention."""
        cutoff = time.time() - self.settings.retention_s
        for entry in self.dir.iterdir():
            if entry == self.work:
                continue  # this process's own scratch (removed by ``recover`` once it died)
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink()

    # ------------------------------------------------------------ restores

    async def receive(self, chunks: AsyncIterator[bytes]) -> Path:
        """Stream an uploaded bundle to a scratch file, refusing it past ``max_bytes``."""
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, kept on success
            dir=self.work, prefix=".upload-", suffix=_SUFFIX, delete=False
        )
        path = Path(handle.name)
        try:
            with handle:
                size = await self._copy(chunks, handle)
        except BaseException:
            await asyncio.to_thread(path.unlink, missing_ok=True)
            raise
        if size == 0:
            await asyncio.to_thread(path.unlink, missing_ok=True)
            raise InvalidInput("the request has no bundle in its body", code="bad_bundle")
        return path

    async def _copy(self, chunks: AsyncIterator[bytes], handle: IO[bytes]) -> int:
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > self.settings.max_bytes:
                raise PayloadTooLarge(
                    f"bundle over {self.settings.max_bytes} bytes (SIEVE_BUNDLE_MAX_BYTES)"
                )
            await asyncio.to_thread(handle.write, chunk)
        return size

    async def restore(
        self,
        tenant: str,
        path: Path,
        *,
        name: str | None,
        check_models: Callable[[BundleModels], None],
    ) -> RestoreOutcome:
        """Verify and restore the bundle at ``path`` (removed afterwards)."""
        try:
            with self._slot():
                return await self._in_pool(lambda: self._restore(tenant, path, name, check_models))
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)

    def _restore(
        self,
        tenant: str,
        path: Path,
        name: str | None,
        check_models: Callable[[BundleModels], None],
    ) -> RestoreOutcome:
        bundle = open_bundle(path, self.work, max_expanded_bytes=self.settings.max_expanded_bytes)
        try:
            # Under a lease retired at its end: an undo that could not finish is swept.
            with self._heartbeat.lease() as owner:
                result = restore_bundle(
                    bundle,
                    tenant=tenant,
                    name=name,
                    state=self._state,
                    store=self._store,
                    blobs=self._blobs,
                    feedback=self._feedback,
                    check_models=check_models,
                    max_collections=self._max_collections,
                    quota=self._quota,
                    owner=owner,
                )
            evaluation = False
            data = bundle.read_extra("evaluation.json")
            if data is not None:
                try:
                    report = EvaluationReport.model_validate_json(data)
                except ValidationError:
                    log.warning("a restored bundle's evaluation report was unreadable")
                else:
                    EvaluationStore(self._state.raw()).put(tenant, result.record.name, report)
                    evaluation = True
            return RestoreOutcome(result, evaluation)
        finally:
            bundle.close()


def _interrupted(view: SnapshotResponse) -> SnapshotResponse:
    return view.model_copy(
        update={
            "state": "failed",
            "finished_at": view.finished_at or time.time(),
            "error": {
                "code": "snapshot_interrupted",
                "message": "the process taking it stopped; take it again",
            },
        }
    )
