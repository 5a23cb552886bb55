"""A Celery retry waiting out its countdown is held, unacknowledged, by a live worker: the
reaper must not take it for a message whose consumer died (issue 19). A real Redis and a
real Celery worker (the threads pool, in this process) holding a real ETA message."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis

from core.settings import WorkerSettings
from indexing.messages import DocVersion, IngestTask
from services.worker.celery_app import make_celery
from services.worker.celery_queue import INGEST_QUEUE, CeleryTaskQueue

pytestmark = pytest.mark.slow


@pytest.fixture
def queue(redis_url: str) -> Iterator[tuple[CeleryTaskQueue, redis.Redis]]:
    own_db = redis_url.rsplit("/", 1)[0] + "/3"
    broker = redis.Redis.from_url(own_db)
    broker.flushdb()
    celery = make_celery(own_db, WorkerSettings())
    from celery.worker import WorkController  # noqa: PLC0415 - heavy, only here

    worker: Any = WorkController(
        app=celery,
        pool_cls="threads",
        concurrency=1,
        queues=[INGEST_QUEUE],
        hostname="countdown@test",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="WARNING",
    )
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    try:
        yield CeleryTaskQueue(celery, broker), broker
    finally:
        worker.stop(in_sighandler=False)
        thread.join(timeout=30)
        broker.flushdb()
        broker.close()


def test_a_retry_waiting_out_its_countdown_is_not_orphaned(
    queue: tuple[CeleryTaskQueue, redis.Redis],
) -> None:
    tasks, broker = queue
    task = IngestTask(tenant="t", collection="c", job_id="j", docs=[DocVersion(id="d", version=1)])
    tasks.send_ingest(task, countdown_s=60)  # what a retry with backoff sends
    deadline = time.monotonic() + 30
    while not broker.hlen("unacked"):
        assert time.monotonic() < deadline, "the worker never received the message"
        time.sleep(0.05)
    time.sleep(1.5)
    # The worker holds it (delivered 1.5 s ago, unacknowledged): past a 1 s orphan window
    # by its delivery time, yet its consumer lives and runs it at the ETA.
    scores = cast(list[tuple[bytes, float]], broker.zrange("unacked_index", 0, -1, withscores=True))
    assert [time.time() - at > 1.0 for _, at in scores] == [True]
    assert tasks.delivered(1.0) == []
    # Only once its ETA plus the window has passed is it a candidate: seen from an hour on.
    assert [t for _, t in tasks.delivered(-3600.0)] == [task]
