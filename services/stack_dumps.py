"""``kill -USR1`` on a Sieve process prints every thread's stack to its log.

A process that does not stop, or stops answering, can then be read without a debugger: the
supervisor, the API and the model hub write the stacks to their stderr (their log file under
``sieve up``). Celery's worker has its own SIGUSR1 handler that does the same.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import signal
import sys

__all__ = ["dump_stacks_on_sigusr1"]


def dump_stacks_on_sigusr1() -> None:
    """From now on SIGUSR1 writes every thread's Python stack to stderr (the process goes on).

    The process's own stderr (file descriptor 2), not ``sys.stderr``: a test runner may have
    swapped that for an in-memory buffer. Without a stderr there is nowhere to write, and
    nothing is registered.
    """
    stderr = sys.__stderr__
    if stderr is None:
        return
    with contextlib.suppress(io.UnsupportedOperation, OSError, ValueError):
        faulthandler.register(signal.SIGUSR1, file=stderr, all_threads=True)
