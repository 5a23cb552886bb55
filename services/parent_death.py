"""A child process goes when its parent goes (Linux ``PR_SET_PDEATHSIG``), however the parent dies.

The children of ``sieve up`` and the prefork pool processes of a worker use it: a supervisor
killed with SIGKILL gets no chance to stop anything, and a child left behind holds a port or
the Edge store's lock while it waits, in a graceful shutdown, on peers that are gone too.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

__all__ = ["die_with_parent", "parent_death_hook"]

_PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


def die_with_parent(sig: signal.Signals, parent_pid: int) -> None:
    """From now on ``sig`` reaches this process when ``parent_pid`` exits.

    If the parent is already gone (it died before the call), the signal is sent at once:
    the kernel would never send it.
    """
    _arm(_prctl(), sig, parent_pid)


def _arm(prctl: Callable[..., int] | None, sig: signal.Signals, parent_pid: int) -> None:
    if prctl is None:
        return
    prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


def parent_death_hook(sig: signal.Signals) -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets ``sig`` when this process exits.

    libc is looked up here, before the fork, so the child only makes two system calls.
    """
    prctl = _prctl()
    parent = os.getpid()

    def hook() -> None:
        _arm(prctl, sig, parent)

    return hook
