"""``sieve up``'s stop flag may be set from a signal handler: it takes no lock, so no storm
of signals can leave the supervisor waiting on itself (services/cli/supervisor.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from services.cli.supervisor import StopSignal

ROOT = Path(__file__).resolve().parents[2]


def test_wait_times_out_and_a_set_ends_it() -> None:
    stop = StopSignal()
    started = time.monotonic()
    assert stop.wait(0.2) is False
    assert time.monotonic() - started >= 0.2
    threading.Timer(0.1, stop.set).start()
    assert stop.wait(10) is True
    assert stop.is_set()
    assert stop.wait(0) is True


def test_a_signal_handler_ends_a_wait_at_once() -> None:
    stop = StopSignal()
    previous = signal.signal(signal.SIGUSR2, lambda _s, _f: stop.set())
    try:
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR2)).start()
        started = time.monotonic()
        assert stop.wait(30) is True
        assert time.monotonic() - started < 5
    finally:
        signal.signal(signal.SIGUSR2, previous)


# A process that sets its stop flag from a SIGTERM handler and goes on waiting on it for two
# seconds, while this test sends it SIGTERM as fast as it can. With threading.Event a handler
# sometimes ran while the main thread held the event's lock (inside wait, or inside the set
# of a handler it interrupted) and blocked on it for good: half of such runs hung.
_STORM = textwrap.dedent(
    """
    import signal, time
    from services.cli.supervisor import StopSignal
    stop = StopSignal()
    signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
    print("ready", flush=True)
    end = time.monotonic() + 2
    while time.monotonic() < end:
        stop.wait(0.001)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("done", flush=True)
    """
)


def test_a_storm_of_signals_never_hangs_the_waiter() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _STORM],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    until = time.monotonic() + 2.5
    while time.monotonic() < until and proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            break
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("the process hung under the signals") from None
    assert out == b"done\n"
    assert proc.returncode == 0
