"""The API's pools: the CPU pool admits threads + queue jobs, refuses the next, recovers."""

from __future__ import annotations

import asyncio
import threading

import pytest

from core.errors import Overloaded
from services.api.pools import CpuPool


def test_the_cpu_pool_refuses_past_threads_plus_queue_and_frees_its_places() -> None:
    async def scenario() -> None:
        pool = CpuPool(threads=2, queue=1, retry_after_s=3)
        release = threading.Event()
        started = threading.Semaphore(0)

        def job() -> bool:
            started.release()
            return release.wait(30)

        jobs = [asyncio.ensure_future(pool.run(job)) for _ in range(3)]
        for _ in range(2):  # both threads run a job; the third waits in the queue
            assert await asyncio.to_thread(started.acquire, timeout=10)
        load = pool.load()
        assert (load.in_use, load.size, load.queued) == (2, 2, 1)
        with pytest.raises(Overloaded) as refused:
            await pool.run(release.wait, 30)
        assert refused.value.retry_after == 3
        assert refused.value.code == "cpu_pool_full"
        assert pool.refused == 1
        release.set()
        assert await asyncio.gather(*jobs) == [True, True, True]
        await asyncio.sleep(0.05)  # the done callbacks run on the loop
        assert await pool.run(lambda: 42) == 42
        assert (pool.load().in_use, pool.load().queued) == (0, 0)
        pool.shutdown()

    asyncio.run(scenario())
