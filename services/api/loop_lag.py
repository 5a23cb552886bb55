"""How late the API's event loop runs: ``sieve_event_loop_lag_seconds``.

Every tenant's requests do their Python work on the API's one event loop, so anything
that holds it (a callback that computes for long, or another thread of the process
holding the interpreter lock: the embedded store's shard loads and closes hold it
~10-30 ms, README "Benchmarks") delays every request in flight by as long. A probe
sleeps ``tick_s`` on the loop, again and again, and records by how much each wake-up came
late. ``histogram_quantile(0.99, rate(sieve_event_loop_lag_seconds_bucket[5m]))`` is the
p99 stall; a loop that keeps up stays under a millisecond.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["TICK_S", "watch_loop_lag"]

TICK_S = 0.05  # 20 wake-ups a second


class Observer(Protocol):
    """What the probe records into (a Prometheus histogram)."""

    def observe(self, amount: float) -> None:
        """Record one lag, in seconds."""
        ...


async def watch_loop_lag(
    lag: Observer, *, tick_s: float = TICK_S, clock: Callable[[], float] = time.perf_counter
) -> None:
    """Sleep ``tick_s`` on the running loop forever; record how late each wake-up was."""
    while True:
        start = clock()
        await asyncio.sleep(tick_s)
        lag.observe(max(0.0, clock() - start - tick_s))
