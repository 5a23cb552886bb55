"""The API's thread pools: one for short blocking I/O, one small bounded pool for CPU work.

Before these, every Redis call, blob read and image render shared asyncio's default
executor (``min(32, cores + 4)`` threads: 6 here): six slow image GETs held all six, and
another tenant's ``GET /v1/collections`` waited 78 s behind them. Now short I/O has a pool
of its own (installed as the loop's default executor, so ``in_thread`` and every
``asyncio.to_thread`` use it), and CPU-heavy request work goes through ``CpuPool.run``,
which refuses with ``Overloaded`` (503 + ``Retry-After``) once its threads are busy and its
queue is full, instead of letting work pile up.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from core.errors import Overloaded
from core.settings import ApiSettings
from services.api.tenant_bandwidth import TenantBandwidth
from services.api.tenant_gate import TenantGate

__all__ = ["ApiPools", "CountingExecutor", "CpuPool", "PoolLoad"]

T = TypeVar("T")


@dataclass(frozen=True)
class PoolLoad:
    """A pool's saturation at one moment: threads busy, their number, jobs waiting."""

    in_use: int
    size: int
    queued: int

    def as_dict(self) -> dict[str, int]:
        """``{"in_use", "size", "queued"}`` for ``/readyz``."""
        return {"in_use": self.in_use, "size": self.size, "queued": self.queued}


class CountingExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` that knows how many of its jobs run and how many wait."""

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self.size = max_workers
        self._lock = threading.Lock()
        self._submitted = 0
        self._running = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Queue ``fn``; the counts follow it from queued to running to done."""

        def counted() -> T:
            with self._lock:
                self._running += 1
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self._running -= 1
                    self._submitted -= 1

        with self._lock:
            self._submitted += 1
        try:
            return super().submit(counted)
        except BaseException:
            with self._lock:
                self._submitted -= 1
            raise

    @property
    def pending(self) -> int:
        """Jobs submitted and not finished (running or queued)."""
        with self._lock:
            return self._submitted

    def load(self) -> PoolLoad:
        """Threads busy, pool size, jobs waiting for a thread."""
        with self._lock:
            return PoolLoad(self._running, self.size, self._submitted - self._running)


class CpuPool:
    """A few threads for CPU-heavy request work and a bounded queue in front of them."""

    def __init__(self, *, threads: int, queue: int, retry_after_s: float) -> None:
        self._executor = CountingExecutor(threads, "sieve-cpu")
        self._capacity = threads + queue
        self._retry_after_s = retry_after_s
        self._admitted = 0
        self.refused = 0

    def check(self) -> None:
        """Refuse now, before a body is read, when ``run`` would refuse.

        Raises:
            Overloaded: every thread is busy and the queue is full.
        """
        if self._admitted >= self._capacity:
            self.refused += 1
            raise Overloaded(
                f"the API's CPU pool is full ({self._executor.size} threads, "
                f"{self._capacity - self._executor.size} queued: SIEVE_API_CPU_THREADS, "
                "SIEVE_API_CPU_QUEUE); retry later",
                code="cpu_pool_full",
                retry_after=self._retry_after_s,
            )

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the pool and await it.

        Admission is counted on the event loop (one thread), so it cannot race; a job whose
        caller went away still holds its place until its thread is done with it.

        Raises:
            Overloaded: every thread is busy and the queue is full.
        """
        self.check()
        self._admitted += 1
        try:
            future = self._executor.submit(fn, *args, **kwargs)
        except BaseException:
            self._admitted -= 1
            raise
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return await asyncio.wrap_future(future)

    def _release(self) -> None:
        self._admitted -= 1

    def load(self) -> PoolLoad:
        """Threads busy, pool size, jobs waiting."""
        return self._executor.load()

    def shutdown(self) -> None:
        """Let running jobs finish; start no new ones."""
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass
class ApiPools:
    """The short-I/O executor and the CPU pool, sized by ``SIEVE_API_*`` settings."""

    io: CountingExecutor
    cpu: CpuPool
    # Each tenant's share of the event loop (services/api/tenant_gate.py) and its bytes
    # (services/api/tenant_bandwidth.py).
    tenants: TenantGate
    bandwidth: TenantBandwidth

    @classmethod
    def from_settings(cls, api: ApiSettings) -> ApiPools:
        """Pools of ``SIEVE_API_IO_THREADS`` and ``SIEVE_API_CPU_THREADS`` (+ ``_CPU_QUEUE``)."""
        return cls(
            io=CountingExecutor(api.io_threads, "sieve-io"),
            cpu=CpuPool(
                threads=api.cpu_threads,
                queue=api.cpu_queue,
                retry_after_s=api.busy_retry_after_s,
            ),
            tenants=TenantGate(
                concurrency=api.tenant_concurrency,
                queue=api.tenant_queue,
                retry_after_s=api.busy_retry_after_s,
            ),
            bandwidth=TenantBandwidth(
                bytes_per_s=api.tenant_bytes_per_s, burst_s=api.tenant_burst_s
            ),
        )

    def saturation(self) -> dict[str, dict[str, int]]:
        """``{"io": {...}, "cpu": {...}, "tenants": {...}}``: in-use, size and queued of each
        pool (and the CPU pool's and the tenant line's refusals so far)."""
        return {
            "io": self.io.load().as_dict(),
            "cpu": {**self.cpu.load().as_dict(), "refused": self.cpu.refused},
            "tenants": self.tenants.saturation(),
        }

    def shutdown(self) -> None:
        """Stop the CPU pool (jobs in hand finish); the I/O pool is the loop's default
        executor, which the loop shuts down itself when it closes."""
        self.cpu.shutdown()
