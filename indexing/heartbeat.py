"""An owner's heartbeat: while it beats, what the owner claimed is not taken from it."""

from __future__ import annotations

import logging
import threading
import uuid

from core.errors import SieveError
from indexing.state_store import StateStore

__all__ = ["Heartbeat", "new_owner_id"]

log = logging.getLogger("sieve.indexing")


def new_owner_id(kind: str) -> str:
    """A fresh owner id (one per process incarnation: a restarted process is a new owner)."""
    return f"{kind}-{uuid.uuid4().hex[:12]}"


class Heartbeat:
    """Refreshes ``owner``'s liveness key every ``every_s`` with a ``ttl_s`` expiry.

    A process killed with SIGKILL stops beating; ``ttl_s`` later the reaper requeues what
    it held. ``stop()`` retires the owner at once (a clean stop hands work back quickly).
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

    def beat(self) -> None:
        """One beat (also called once before claiming anything)."""
        self._state.heartbeat(self.owner, self._ttl_s)

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
        try:
            self._state.retire(self.owner)
        except SieveError:
            log.warning("could not retire owner", extra={"owner": self.owner})
