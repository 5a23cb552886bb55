"""Thin Celery tasks over the lifecycle: validate the typed message, call ``indexing``.

``sieve.ingest`` runs in the worker processes (parse → chunk → embed) and sends the
points as a ``sieve.write``; that one runs where the store lives (the API process in
embedded mode, any worker in compose mode). Every message carries the document versions
it was made for, so redelivery after a crash only redoes work: it never duplicates,
loses or resurrects a document.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from core.errors import UpstreamUnavailable
from core.logs import log_context
from indexing.messages import IngestTask
from services.worker.celery_queue import INGEST_TASK, WRITE_TASK, parse_write
from services.worker.context import store_owner, worker_context

__all__ = ["ingest", "write"]

log = logging.getLogger("sieve.worker")

# Celery-level retries of a whole batch after the embeddings client's own per-request
# retries gave up (the hub was down for minutes, not seconds).
_INGEST_RETRIES = 5
_WRITE_RETRIES = 10


@shared_task(
    name=INGEST_TASK,
    bind=True,
    acks_late=True,
    autoretry_for=(UpstreamUnavailable,),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=_INGEST_RETRIES,
)
def ingest(self: Task[Any, Any], raw: dict[str, Any]) -> dict[str, int]:
    """Parse, chunk and embed a batch of a job's documents; hand their points on."""
    task = IngestTask.model_validate(raw)
    runner = worker_context().runner
    with log_context(job_id=task.job_id, task_id=self.request.id, documents=len(task.docs)):
        return runner.run(task, last_attempt=self.request.retries >= _INGEST_RETRIES)


@shared_task(
    name=WRITE_TASK,
    bind=True,
    acks_late=True,
    autoretry_for=(UpstreamUnavailable,),
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=_WRITE_RETRIES,
)
def write(self: Task[Any, Any], raw: dict[str, Any]) -> str:
    """Apply one write to the chunk store (run by the store's owner)."""
    message = parse_write(raw)
    with log_context(task_id=self.request.id, collection=message.collection):
        return store_owner().writer.apply(
            message, last_attempt=self.request.retries >= _WRITE_RETRIES
        )
