"""An owner's heartbeat: while it beats, what the owner claimed is not taken from it."""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from core.errors import SieveError
from indexing.state_store import StateStore

__all__ = ["Heartbeat", "new_owner_id"]

log = logging.getLogger("sieve.indexing")


def new_owner_id(kind: str) -> str:
    """A fresh owner id (one per process incarnation: a restarted process is a new owner)."""
    return f"{kind}-{uuid.uuid4().hex[:12]}"


class Heartbeat:
    """Keeps this process's leases alive: each refreshed every ``every_s``, expiring in ``ttl_s``.

    A task takes a lease (``lease()``) and claims documents under its id; when the task
    ends, however it ends (an exception, Redis gone mid-step), the lease is dropped, so
    whatever it still holds is requeued by the reaper ``ttl_s`` later. A process killed
    with SIGKILL stops beating every lease at once. ``stop()`` retires them all.
    """

    def __init__(self, state: StateStore, owner: str, *, ttl_s: float, every_s: float) -> None:
        if every_s >= ttl_s:
            raise ValueError("the heartbeat must beat more often than its expiry")
        self._state = state
        self.owner = owner
        self._ttl_s = ttl_s
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._leases: set[str] = set()
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    def beat(self) -> None:
        """One beat for every lease held."""
        with self._lock:
            owners = [self.owner, *self._leases]
        for owner in owners:
            self._state.heartbeat(owner, self._ttl_s)

    @contextmanager
    def lease(self) -> Iterator[str]:
        """A fresh owner id, alive while the block runs, retired when it leaves."""
        owner = f"{self.owner}.{next(self._counter)}"
        self._state.heartbeat(owner, self._ttl_s)
        with self._lock:
            self._leases.add(owner)
        try:
            yield owner
        finally:
            with self._lock:
                self._leases.discard(owner)
            try:
                self._state.retire(owner)
            except SieveError:
                log.warning("could not retire a lease; it expires", extra={"owner": owner})

    def start(self) -> None:
        """Beat now, then in a daemon thread."""
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="sieve-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self.beat()
            except SieveError as exc:
                # Redis is away: keep trying; claims survive up to ttl_s without a beat.
                log.warning("heartbeat failed", extra={"code": exc.code})

    def stop(self) -> None:
        """Stop beating and retire the owner."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            owners = [self.owner, *self._leases]
        for owner in owners:
            try:
                self._state.retire(owner)
            except SieveError:
                log.warning("could not retire owner", extra={"owner": owner})
