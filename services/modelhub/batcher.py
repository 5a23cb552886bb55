"""Dynamic micro-batching: rows from concurrent requests share padded ONNX batches.

Each model has a few *lanes* (asyncio tasks). A lane waits for rows, takes a slot of the
shared inference pool (one slot per inference thread), picks one batch with
``take_batch`` and runs it in the pool's thread, off the event loop. Rows are grouped by
length so that padding stays small; the queue is bounded and a full queue is a 503.

Bulk work never holds every inference thread. A query's embedding waits on the hub; an
ingest worker's chunks do not. Served oldest first, on 2 cores, a query that arrived while
both threads ran ingest batches (up to ~1 s each) waited for them: in bench/isolation.py,
tenant B's query p99 was 40x its alone value while tenant A indexed documents. So:

- a request marks itself bulk with ``x-sieve-priority: batch`` (Sieve's worker and
  re-indexer do; every other request is interactive);
- while interactive rows have come in within ``InferencePool.reserve_window_s``, bulk
  batches may hold at most ``threads - reserved`` threads at once, so one is free for them;
- a lane takes interactive rows first, in a batch of their own (a query's row is never
  padded into a batch of long chunks); a bulk row that has waited ``max_wait_s`` goes
  first, so interactive traffic slows bulk work down but never starves it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from services.modelhub.errors import Overloaded

__all__ = [
    "BatchLimits",
    "InferencePool",
    "MicroBatcher",
    "bulk_request",
    "take_batch",
]

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
    # Interactive rows go ahead of bulk ones, until a bulk row has waited this long (s).
    max_wait_s: float = 30.0


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


# The request's class as the batcher sees it: set by the hub's guard for the request's
# task from ``core.defaults.PRIORITY_HEADER``.
bulk_request: ContextVar[bool] = ContextVar("bulk_request", default=False)


class InferencePool:
    """The inference threads every model shares, one slot per thread, and how many of
    them bulk batches may hold while interactive requests are coming in."""

    def __init__(self, threads: int, *, reserved: int = 0, reserve_window_s: float = 5.0) -> None:
        self.threads = threads
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="infer")
        self.slots = asyncio.Semaphore(threads)
        self.busy = 0
        self.bulk_running = 0
        self._bulk_cap = max(1, threads - reserved)
        self._window_s = reserve_window_s
        self._last_interactive = -math.inf
        self._wakers: list[asyncio.Event] = []

    def interactive_seen(self, now: float) -> None:
        """Interactive rows came in at ``now`` (the loop's clock)."""
        self._last_interactive = now

    def bulk_allowed(self, now: float) -> bool:
        """Whether a lane may start one more batch with bulk rows now."""
        recent = now - self._last_interactive < self._window_s
        return self.bulk_running < (self._bulk_cap if recent else self.threads)

    def watch(self, ready: asyncio.Event) -> None:
        """Set ``ready`` whenever a bulk batch ends (a lane waiting for that can go on)."""
        self._wakers.append(ready)

    def bulk_done(self) -> None:
        """One bulk batch ended: wake the lanes."""
        self.bulk_running -= 1
        for ready in self._wakers:
            ready.set()

    def close(self) -> None:
        """Stop the threads once the running batches finish."""
        self.executor.shutdown(wait=True, cancel_futures=True)


@dataclass(slots=True)
class _Pending(Generic[Row]):
    row: Row
    length: int
    future: asyncio.Future[Array]
    bulk: bool  # of a request marked ``x-sieve-priority: batch``
    since: float  # the loop's clock when it came in


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
        pool.watch(self._ready)

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
        bulk, now = bulk_request.get(), loop.time()
        if not bulk:
            self._pool.interactive_seen(now)
        items = [
            _Pending(row, length, loop.create_future(), bulk, now)
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
        candidates = self._candidates()
        if not candidates:
            return []  # only bulk rows wait, and bulk batches hold their share of threads
        idle = self._pool.threads - self._pool.busy  # this lane included: it is not busy yet
        share = max(self._limits.min_split, math.ceil(len(candidates) / max(idle, 1)))
        chosen = take_batch(
            [self._pending[i].length for i in candidates], self._limits, share=share
        )
        picked = {candidates[k] for k in chosen}
        batch = [item for i, item in enumerate(self._pending) if i in picked]
        self._pending = [item for i, item in enumerate(self._pending) if i not in picked]
        return batch

    def _candidates(self) -> list[int]:
        """The pending rows the next batch is taken from (oldest first, so ``take_batch``
        anchors it at the first): every row once the oldest bulk row has waited
        ``max_wait_s``; else the interactive rows, if any; else the bulk rows, if bulk
        batches may take one more thread now."""
        now = asyncio.get_running_loop().time()
        bulk_ok = self._pool.bulk_allowed(now)
        bulk = [i for i, item in enumerate(self._pending) if item.bulk]
        if bulk_ok and bulk and now - self._pending[bulk[0]].since >= self._limits.max_wait_s:
            return list(range(len(self._pending)))
        interactive = [i for i, item in enumerate(self._pending) if not item.bulk]
        if interactive:
            return interactive
        return bulk if bulk_ok else []

    async def _lane(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._ready.wait()
            async with self._pool.slots:
                batch = self._take()
                if not self._pending or not batch:
                    # Nothing left, or nothing this lane may run yet: new rows, or the end of
                    # a bulk batch (``InferencePool.bulk_done``), set it again.
                    self._ready.clear()
                if not batch:
                    continue
                bulk = any(item.bulk for item in batch)
                self._pool.busy += 1
                if bulk:
                    self._pool.bulk_running += 1
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
                    if bulk:
                        self._pool.bulk_done()
                for item, row in zip(batch, out, strict=True):
                    if not item.future.done():
                        item.future.set_result(row)
