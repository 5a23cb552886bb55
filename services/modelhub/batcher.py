"""Dynamic micro-batching: rows from concurrent requests share padded ONNX batches.

Each model has a few *lanes* (asyncio tasks). A lane waits for rows, takes a slot of the
shared inference pool (one slot per inference thread), picks one batch with
``take_batch`` and runs it in the pool's thread, off the event loop. Rows are grouped by
length so that padding stays small; the queue is bounded and a full queue is a 503.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from services.modelhub.errors import Overloaded

__all__ = ["BatchLimits", "InferencePool", "MicroBatcher", "take_batch"]

log = logging.getLogger(__name__)

Row = TypeVar("Row")
Array = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """How big one batch may be: rows, padded tokens, and padded attention cells."""

    max_items: int
    max_tokens: int
    # n * L**2 bounds the attention tensors' memory, which grows with the square of the
    # padded length: a batch of long rows must hold fewer rows.
    max_cells: int
    # A lane never splits off a batch smaller than this to feed an idle thread.
    min_split: int = 4


def take_batch(lengths: Sequence[int], limits: BatchLimits, *, share: int) -> list[int]:
    """Pick one batch from pending rows (oldest first): indices into ``lengths``.

    The batch always holds row 0 (the oldest, so nothing starves) and grows through its
    neighbours in length order, the nearer length first, while the padded batch stays
    within ``limits`` and ``share`` rows.
    """
    if not lengths:
        return []
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    pos = order.index(0)
    lo = hi = pos
    target = max(1, min(share, limits.max_items))
    anchor = lengths[0]

    def fits(n: int, width: int) -> bool:
        return n * width <= limits.max_tokens and n * width * width <= limits.max_cells

    while hi - lo + 1 < target:
        n = hi - lo + 2
        # Widening to the left never lengthens the batch; to the right it does.
        left = lengths[order[lo - 1]] if lo > 0 and fits(n, lengths[order[hi]]) else None
        right = lengths[order[hi + 1]] if hi + 1 < len(order) else None
        if right is not None and not fits(n, right):
            right = None
        if left is None and right is None:
            break
        if right is None or (left is not None and anchor - left <= right - anchor):
            lo -= 1
        else:
            hi += 1
    return sorted(order[lo : hi + 1])


class InferencePool:
    """The inference threads every model shares, and one slot per thread."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="infer")
        self.slots = asyncio.Semaphore(threads)
        self.busy = 0

    def close(self) -> None:
        """Stop the threads once the running batches finish."""
        self.executor.shutdown(wait=True, cancel_futures=True)


@dataclass(slots=True)
class _Pending(Generic[Row]):
    row: Row
    length: int
    future: asyncio.Future[Array]


class MicroBatcher(Generic[Row]):
    """Batches rows of one model across requests; ``submit`` returns their outputs in order."""

    def __init__(
        self,
        name: str,
        run: Callable[[Sequence[Row]], Array],
        pool: InferencePool,
        limits: BatchLimits,
        *,
        queue_limit: int,
        retry_after_s: int,
    ) -> None:
        self.name = name
        self._run = run
        self._pool = pool
        self._limits = limits
        self._queue_limit = queue_limit
        self._retry_after_s = retry_after_s
        self._pending: list[_Pending[Row]] = []
        self._ready = asyncio.Event()
        self._in_system = 0
        self._lanes: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start one lane per inference thread (call inside the running loop)."""
        self._lanes = [
            asyncio.create_task(self._lane(), name=f"{self.name}-lane-{n}")
            for n in range(self._pool.threads)
        ]

    async def close(self) -> None:
        """Stop the lanes; rows still pending fail with 503."""
        for lane in self._lanes:
            lane.cancel()
        await asyncio.gather(*self._lanes, return_exceptions=True)
        for item in self._pending:
            if not item.future.done():
                item.future.set_exception(
                    Overloaded("the hub is shutting down", retry_after=self._retry_after_s)
                )
        self._pending.clear()

    @property
    def queued(self) -> int:
        """Rows accepted and not yet answered (pending or running)."""
        return self._in_system

    async def submit(self, rows: Sequence[Row], lengths: Sequence[int]) -> Array:
        """Run ``rows`` (of the given token lengths) and return their outputs stacked.

        Raises:
            Overloaded: when the queue cannot take the rows now (503 + Retry-After).
        """
        if not rows:
            return np.empty((0,), dtype=np.float32)
        return np.stack(await self.submit_each(rows, lengths))

    async def submit_each(self, rows: Sequence[Row], lengths: Sequence[int]) -> list[Array]:
        """``submit`` without stacking: outputs whose shapes differ by batch (token vectors).

        Raises:
            Overloaded: when the queue cannot take the rows now (503 + Retry-After).
        """
        if not rows:
            return []
        # A request bigger than the whole queue still runs when the hub is idle.
        if self._in_system and self._in_system + len(rows) > self._queue_limit:
            raise Overloaded(
                f"{self.name}: inference queue is full ({self._in_system} rows)",
                retry_after=self._retry_after_s,
            )
        loop = asyncio.get_running_loop()
        items = [
            _Pending(row, length, loop.create_future())
            for row, length in zip(rows, lengths, strict=True)
        ]
        self._in_system += len(items)
        self._pending.extend(items)
        self._ready.set()
        try:
            outputs = await asyncio.gather(*(item.future for item in items))
        finally:
            self._in_system -= len(items)
            for item in items:
                item.future.cancel()  # a no-op once done; drops rows of a cancelled request
        return list(outputs)

    def _take(self) -> list[_Pending[Row]]:
        self._pending = [item for item in self._pending if not item.future.done()]
        if not self._pending:
            return []
        idle = self._pool.threads - self._pool.busy  # this lane included: it is not busy yet
        share = max(self._limits.min_split, math.ceil(len(self._pending) / max(idle, 1)))
        chosen = take_batch([item.length for item in self._pending], self._limits, share=share)
        picked = set(chosen)
        batch = [self._pending[i] for i in chosen]
        self._pending = [item for i, item in enumerate(self._pending) if i not in picked]
        return batch

    async def _lane(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._ready.wait()
            async with self._pool.slots:
                batch = self._take()
                if not self._pending:
                    self._ready.clear()
                if not batch:
                    continue
                self._pool.busy += 1
                try:
                    out = await loop.run_in_executor(
                        self._pool.executor, self._run, [item.row for item in batch]
                    )
                # Not swallowed: the requests waiting on this batch re-raise it, and the
                # guard logs the trace there once.
                except Exception as exc:  # noqa: BLE001
                    log.warning(
                        "inference batch failed",
                        extra={"model": self.name, "rows": len(batch), "error": type(exc).__name__},
                    )
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(exc)
                    continue
                finally:
                    self._pool.busy -= 1
                for item, row in zip(batch, out, strict=True):
                    if not item.future.done():
                        item.future.set_result(row)
