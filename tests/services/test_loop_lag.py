"""The event-loop lag probe: a wake-up that came late is recorded as late, by how much."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, Histogram

from services.api.loop_lag import watch_loop_lag


def _lags(tick_s: float, hold_s: float) -> list[float]:
    lags: list[float] = []

    class Recorder:
        def observe(self, amount: float) -> None:
            lags.append(amount)

    async def main() -> None:
        probe = asyncio.create_task(watch_loop_lag(Recorder(), tick_s=tick_s))
        await asyncio.sleep(tick_s * 3.5)
        time.sleep(hold_s)  # noqa: ASYNC251 - holds the loop, as a long callback or a held GIL would
        await asyncio.sleep(tick_s * 3)
        probe.cancel()

    asyncio.run(main())
    return lags


def test_a_held_loop_is_recorded_by_how_long_it_was_held() -> None:
    lags = _lags(tick_s=0.02, hold_s=0.3)
    assert len(lags) >= 4
    assert max(lags) >= 0.25  # the wake-up due during the hold came ~0.29 s late
    assert all(lag >= 0 for lag in lags)


def test_the_histogram_counts_every_wake_up() -> None:
    registry = CollectorRegistry()
    hist = Histogram("lag_seconds", "test", registry=registry, buckets=(0.001, 0.1, 1))

    async def main() -> None:
        probe = asyncio.create_task(watch_loop_lag(hist, tick_s=0.01))
        await asyncio.sleep(0.1)
        time.sleep(0.15)  # noqa: ASYNC251 - the stall to record
        await asyncio.sleep(0.02)
        probe.cancel()

    asyncio.run(main())
    count = registry.get_sample_value("lag_seconds_count") or 0.0
    under = registry.get_sample_value("lag_seconds_bucket", {"le": "0.1"}) or 0.0
    assert count >= 5
    assert count - under >= 1  # the held wake-up, in the bucket above 0.1 s
