"""Stalled work is requeued, then failed with a reason: no job stays "running" forever."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis

from core.settings import WorkerSettings
from indexing.records import CollectionRecord, DocStatus, DocumentRecord, JobRecord
from indexing.state_store import StateStore
from services.api.deps import ApiDeps
from services.api.reaper import reap_once
from services.worker.celery_app import INGEST_QUEUE, make_celery


@pytest.fixture
def deps(redis_url: str) -> Iterator[ApiDeps]:
    state = StateStore.from_url(redis_url)
    state.raw().flushdb()
    celery = make_celery(redis_url, WorkerSettings())
    # Only the two attributes the reaper uses; the rest of ApiDeps is not involved.
    yield cast(ApiDeps, type("Deps", (), {"state": state, "celery": celery})())
    state.close()


def _queued_tasks(redis_url: str) -> list[Any]:
    client = redis.Redis.from_url(redis_url)
    raw = cast(list[bytes], client.lrange(INGEST_QUEUE, 0, -1))
    return [json.loads(m)["headers"]["argsrepr"] for m in raw]


def test_stalled_documents_are_requeued_then_failed(deps: ApiDeps, redis_url: str) -> None:
    state = deps.state
    state.create_collection(
        CollectionRecord(tenant="t", name="c", embedding_model="m", dimension=4)
    )
    state.create_job(JobRecord(id="j", tenant="t", collection="c"), ["stuck", "fresh", "done"])
    old = time.time() - 3600
    state.put_documents(
        "t",
        "c",
        [
            DocumentRecord(id="stuck", job_id="j", status=DocStatus.EMBEDDING, updated_at=old),
            DocumentRecord(id="fresh", job_id="j", status=DocStatus.PARSING),
            DocumentRecord(id="done", job_id="j", status=DocStatus.INDEXED, updated_at=old),
        ],
    )
    # put_documents keeps the given updated_at; the reaper looks only at stale, unfinished ones.
    assert reap_once(deps, stall_after_s=600, max_attempts=2) == {"requeued": 1, "failed": 0}
    stuck = state.get_document("t", "c", "stuck")
    assert (stuck.status, stuck.attempts) == (DocStatus.QUEUED, 1)
    assert _queued_tasks(redis_url) == ["['j', ['stuck']]"]
    assert state.get_document("t", "c", "fresh").status is DocStatus.PARSING
    # Still no progress after the allowed attempts: failed, with a reason, never "running".
    state.put_documents("t", "c", [stuck.model_copy(update={"attempts": 2, "updated_at": old})])
    assert reap_once(deps, stall_after_s=600, max_attempts=2) == {"requeued": 0, "failed": 1}
    stuck = state.get_document("t", "c", "stuck")
    assert (stuck.status, stuck.error_reason) == (DocStatus.FAILED, "stalled")
    assert state.get_job("t", "j").documents["stuck"] == "failed"
