"""Micro-batching: batch choice by length, batching across requests, a bounded queue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest

from services.modelhub.batcher import (
    BatchLimits,
    InferencePool,
    MicroBatcher,
    bulk_request,
    take_batch,
)
from services.modelhub.errors import Overloaded

LIMITS = BatchLimits(max_items=8, max_tokens=1_000, max_cells=1_000 * 128)


def test_batch_holds_the_oldest_and_its_nearest_lengths() -> None:
    lengths = [100, 10, 500, 98, 101, 12, 99]
    chosen = take_batch(lengths, LIMITS, share=4)
    assert 0 in chosen
    assert sorted(lengths[i] for i in chosen) == [98, 99, 100, 101]


def test_batch_respects_token_and_attention_budgets() -> None:
    assert len(take_batch([100] * 20, LIMITS, share=20)) == 8  # max_items
    no_cells = BatchLimits(max_items=8, max_tokens=1_000, max_cells=10**9)
    assert len(take_batch([200] * 20, no_cells, share=20)) == 5  # 5 * 200 tokens
    assert len(take_batch([200] * 20, LIMITS, share=20)) == 3  # 3 * 200**2 cells
    long = BatchLimits(max_items=64, max_tokens=8_192, max_cells=8_192 * 128)
    assert len(take_batch([512] * 20, long, share=20)) == 4  # n * 512**2 cells
    assert len(take_batch([140] * 200, long, share=200)) == 53
    assert take_batch([5_000], LIMITS, share=1) == [0]  # a lone long row still runs


def test_batch_of_an_empty_queue_is_empty() -> None:
    assert take_batch([], LIMITS, share=4) == []


class GatedModel:
    """Records each batch; the first one waits until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()

    def run(self, rows: Sequence[int]) -> np.ndarray:
        if not self.batches:
            self.batches.append(list(rows))
            self.gate.wait(10)
        else:
            self.batches.append(list(rows))
        return np.array([float(r) * 2 for r in rows], dtype=np.float32)


def _batcher(model: GatedModel, pool: InferencePool, queue_limit: int) -> MicroBatcher[int]:
    return MicroBatcher[int](
        "test", model.run, pool, LIMITS, queue_limit=queue_limit, retry_after_s=2
    )


def test_rows_of_concurrent_requests_share_batches_and_keep_their_order() -> None:
    async def scenario() -> None:
        model = GatedModel()
        pool = InferencePool(1)
        batcher = _batcher(model, pool, queue_limit=100)
        batcher.start()
        first = asyncio.create_task(batcher.submit([1], [10]))
        await asyncio.sleep(0.05)  # the first batch is now running (and held)
        others = [
            asyncio.create_task(batcher.submit([10 * k + 1, 10 * k + 2], [10, 10]))
            for k in range(1, 4)
        ]
        await asyncio.sleep(0.05)
        model.gate.set()
        assert (await first).tolist() == [2.0]
        results = await asyncio.gather(*others)
        assert [r.tolist() for r in results] == [[22.0, 24.0], [42.0, 44.0], [62.0, 64.0]]
        # Three requests waited together: their six rows ran as one batch.
        assert len(model.batches) == 2
        assert sorted(model.batches[1]) == [11, 12, 21, 22, 31, 32]
        await batcher.close()
        pool.close()

    asyncio.run(scenario())


def test_full_queue_refuses_with_retry_after_and_recovers() -> None:
    async def scenario() -> None:
        model = GatedModel()
        pool = InferencePool(1)
        batcher = _batcher(model, pool, queue_limit=4)
        batcher.start()
        held = asyncio.create_task(batcher.submit([1, 2, 3], [5, 5, 5]))
        await asyncio.sleep(0.05)
        assert batcher.queued == 3
        with pytest.raises(Overloaded) as info:
            await batcher.submit([4, 5], [5, 5])
        assert info.value.retry_after == 2
        model.gate.set()
        await held
        assert batcher.queued == 0
        assert (await batcher.submit([4, 5], [5, 5])).tolist() == [8.0, 10.0]
        await batcher.close()
        pool.close()

    asyncio.run(scenario())


def test_a_failing_batch_fails_its_requests_only() -> None:
    async def scenario() -> None:
        calls = 0

        def flaky(rows: Sequence[int]) -> np.ndarray:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("boom")
            return np.zeros(len(rows), dtype=np.float32)

        pool = InferencePool(1)
        batcher = MicroBatcher[int]("flaky", flaky, pool, LIMITS, queue_limit=10, retry_after_s=1)
        batcher.start()
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit([1], [3])
        assert (await batcher.submit([2], [3])).tolist() == [0.0]
        assert batcher.queued == 0
        await batcher.close()
        pool.close()

    asyncio.run(scenario())


async def _bulk(batcher: MicroBatcher[int], rows: list[int], lengths: list[int]) -> np.ndarray:
    """Submit as a request marked ``x-sieve-priority: batch`` would (the guard sets this)."""
    bulk_request.set(True)  # this task's own context only
    return await batcher.submit(rows, lengths)


async def _batches_after_a_held_one(
    limits: BatchLimits, bulk: tuple[list[int], list[int]], queries: list[int], hold_s: float
) -> list[list[int]]:
    """Hold a first batch, submit a bulk request, then one-row interactive ones; release
    after ``hold_s``; the batches that ran after the held one."""
    model = GatedModel()
    pool = InferencePool(1)
    batcher = MicroBatcher[int]("test", model.run, pool, limits, queue_limit=100, retry_after_s=1)
    batcher.start()
    held = asyncio.create_task(batcher.submit([0], [10]))
    await asyncio.sleep(0.05)
    tasks = [asyncio.create_task(_bulk(batcher, *bulk))]
    await asyncio.sleep(0.01)
    for row in queries:
        tasks.append(asyncio.create_task(batcher.submit([row], [10])))
        await asyncio.sleep(0.01)
    await asyncio.sleep(hold_s)
    model.gate.set()
    await asyncio.gather(held, *tasks)
    await batcher.close()
    pool.close()
    return model.batches[1:]


def test_an_interactive_request_is_batched_alone_ahead_of_a_bulk_one_that_came_first() -> None:
    bulk = (list(range(100, 120)), [10] * 20)  # an ingest worker's 20 chunks
    batches = asyncio.run(_batches_after_a_held_one(LIMITS, bulk, [7], hold_s=0.05))
    # Served oldest first, the query would have waited for three batches of the bulk rows,
    # or been padded into one of them.
    assert batches[0] == [7], batches
    assert sorted(r for b in batches for r in b) == [7, *range(100, 120)]  # nothing lost


def test_a_bulk_row_that_waited_long_enough_goes_first() -> None:
    bulk = (list(range(100, 110)), [10] * 10)
    for max_wait_s, bulk_first in ((60.0, False), (0.05, True)):
        limits = BatchLimits(
            max_items=2, max_tokens=1_000, max_cells=1_000 * 128, max_wait_s=max_wait_s
        )
        batches = asyncio.run(_batches_after_a_held_one(limits, bulk, [1, 2, 3], hold_s=0.2))
        assert (100 in batches[0]) is bulk_first, (max_wait_s, batches)


class TwoGates:
    """A model whose batches each wait for their own release; records them as they start."""

    def __init__(self) -> None:
        self.started: list[list[int]] = []
        self.release = threading.Event()

    def run(self, rows: Sequence[int]) -> np.ndarray:
        self.started.append(list(rows))
        if min(rows) >= 100:  # bulk rows are held until released
            self.release.wait(10)
        return np.zeros(len(rows), dtype=np.float32)


def test_bulk_batches_leave_a_thread_to_interactive_requests_while_those_come_in() -> None:
    async def scenario(reserved: int) -> tuple[list[list[int]], bool]:
        model = TwoGates()
        pool = InferencePool(2, reserved=reserved, reserve_window_s=60)
        limits = BatchLimits(max_items=2, max_tokens=1_000, max_cells=10**9, min_split=1)
        batcher = MicroBatcher[int]("t", model.run, pool, limits, queue_limit=100, retry_after_s=1)
        batcher.start()
        await batcher.submit([1], [10])  # an interactive request: the reserve is on
        bulk = asyncio.create_task(_bulk(batcher, list(range(100, 104)), [10] * 4))
        await asyncio.sleep(0.1)
        running_bulk = len(model.started) - 1
        query = asyncio.create_task(batcher.submit([7], [10]))
        await asyncio.sleep(0.1)
        answered = query.done()
        model.release.set()
        await asyncio.gather(bulk, query)
        await batcher.close()
        pool.close()
        return model.started[1 : 1 + running_bulk], answered

    held, answered = asyncio.run(scenario(reserved=1))
    assert len(held) == 1, held  # one bulk batch at a time: the other thread stays free
    assert answered  # the query ran beside it, without waiting for the bulk batch
    held, answered = asyncio.run(scenario(reserved=0))
    assert len(held) == 2, held  # without the reserve, bulk takes both threads...
    assert not answered  # ...and the query waits for one of them
