"""The ``TaskQueue`` port: how the lifecycle hands work to the workers and the store writer.

``services/worker`` adapts it to Celery; tests may run the lifecycle over any
implementation. Delivery is at least once: the state's versions make repeats harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from indexing.messages import DeleteWrite, IngestTask, ReplaceWrite

__all__ = ["Pending", "TaskQueue"]


@dataclass
class Pending:
    """Which document versions have a message waiting or in hand (for recovery).

    Keys are ``(tenant, collection, document id, version)``.
    """

    ingest: set[tuple[str, str, str, int]] = field(default_factory=set)
    writes: set[tuple[str, str, str, int]] = field(default_factory=set)


class TaskQueue(Protocol):
    """Send lifecycle messages; list what is pending."""

    def send_ingest(self, task: IngestTask, *, countdown_s: float = 0) -> None:
        """Queue parse → chunk → embed for the task's documents."""
        ...

    def send_write(self, write: ReplaceWrite | DeleteWrite, *, countdown_s: float = 0) -> None:
        """Queue a write for the store's owner."""
        ...

    def pending(self) -> Pending:
        """Every message waiting in a queue or delivered and not yet acknowledged."""
        ...

    def delivered(self, older_than_s: float) -> list[tuple[str, IngestTask]]:
        """Ingest messages delivered over ``older_than_s`` ago and still unacknowledged."""
        ...

    def redeliver(self, tag: str) -> bool:
        """Put a delivered, unacknowledged message back in its queue (its consumer died)."""
        ...
