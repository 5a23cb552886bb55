"""The Celery application: JSON only, late acks, one message at a time, capped retries."""

from __future__ import annotations

from celery import Celery

from core.settings import WorkerSettings
from services.worker.celery_queue import INGEST_QUEUE, STORE_WRITES_QUEUE, WRITE_TASK

__all__ = ["INGEST_QUEUE", "STORE_WRITES_QUEUE", "make_celery"]


def make_celery(redis_url: str, worker: WorkerSettings) -> Celery:
    """Build the Celery app for ``redis_url`` with Sieve's delivery guarantees."""
    app = Celery("sieve", broker=redis_url, include=["services.worker.tasks"])
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A task is acknowledged only after it finished; a worker killed mid-task gives
        # the message back (reject_on_worker_lost) and another worker redoes it. The
        # tasks are idempotent (deterministic point ids, content hashes), so that is safe.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=worker.task_time_limit_s,
        # The soft limit leaves the task a moment to record why it stopped.
        task_soft_time_limit=worker.task_time_limit_s
        - max(1, min(30, worker.task_time_limit_s // 10)),
        broker_transport_options={"visibility_timeout": worker.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        task_default_queue=INGEST_QUEUE,
        task_routes={WRITE_TASK: {"queue": STORE_WRITES_QUEUE}},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_track_started=False,
    )
    return app
