"""Each tenant's share of the API process: at most a few of its requests run at once.

Every request of every tenant runs on the one event loop of the API process. Before this
gate, a tenant firing eight clients of cheap requests (image GETs, feedback, collection
churn) kept the loop's queue full, and every step of another tenant's query waited behind
them (bench/isolation.py: B's query p50 4.4x, list 8.9x). Now a tenant's requests past
``SIEVE_API_TENANT_CONCURRENCY`` wait in the tenant's own line (first come, first served;
waiting costs nothing but a future), so the loop holds at most that many of each tenant's
requests and another tenant's request goes first. Past ``SIEVE_API_TENANT_QUEUE`` waiting,
the request is refused at once with 429 ``tenant_busy`` and ``Retry-After``.

The turns are shared out among the tenants at work, by what each asks for (max-min
fairness). A tenant alone may run ``SIEVE_API_TENANT_CONCURRENCY`` requests. With others
at work, each tenant's demand is what it runs and has waiting, or the most it had at once
in the last second (a client between two requests is not gone); the turns are filled up
like water: a tenant asking for less than an equal part gets what it asks, and the rest is
split evenly among the others (rounded up, at least one each). So with four turns, a
tenant with many clients runs two beside another's two, and three beside a tenant that
sends one request at a time. A tenant cannot hold four turns against another's two: with
a fixed four, tenant A's whole mix against B's two clients gave B's query p99 2.0-2.7x its
alone value and its list p99 3.4-4.1x; shared, 1.6-2.4x and 1.9-3.1x (bench/isolation.py).
A tenant over its share keeps what it runs (nothing is stopped) and starts no more until
it is under it; when the others go quiet, its waiting requests start again at the next
turn given back.

A request that only waits (``?wait=true`` polling its job) gives its turn back
(:func:`release_turn`): waiting is not work, and it must not hold the tenant's other
requests for minutes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from core.errors import TooManyRequests

__all__ = ["TenantGate", "keep_turn", "release_turn", "water_level"]

_TURN = "tenant_turn"
# A tenant's demand is the most it had running and waiting within this window: a client
# between two requests is not gone, and the shares must not swing with every request.
ACTIVE_WINDOW_S = 1.0


def water_level(capacity: int, others: list[int]) -> float:
    """The turns one tenant may take when the others ask for ``others``: fill ``capacity``
    evenly, each other tenant taking no more than it asks (max-min fairness)."""
    remaining, sharing = float(capacity), len(others) + 1
    level = remaining / sharing
    for demand in sorted(others):
        if demand >= level:
            break
        remaining -= demand
        sharing -= 1
        level = remaining / sharing
    return level


@dataclass
class _Line:
    running: int = 0
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)


class TenantGate:
    """Per tenant: its share of ``concurrency`` running, ``queue`` more waiting, the rest 429."""

    def __init__(
        self,
        *,
        concurrency: int,
        queue: int,
        retry_after_s: float,
        active_window_s: float = ACTIVE_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.concurrency = concurrency
        self.queue = queue
        self._retry_after_s = retry_after_s
        self._active_window_s = active_window_s
        self._clock = clock
        self._lines: dict[str, _Line] = {}
        # tenant -> (the most it had running and waiting at once, when it last had that)
        self._peaks: dict[str, tuple[int, float]] = {}
        self.refused = 0

    def saturation(self) -> dict[str, int]:
        """For ``/readyz`` and ``sieve_pool_*{pool="tenants"}``: requests running and waiting
        over every tenant, the per-tenant concurrency, and the 429s so far."""
        running = sum(line.running for line in self._lines.values())
        waiting = sum(len(line.waiting) for line in self._lines.values())
        return {
            "in_use": running,
            "size": self.concurrency,
            "queued": waiting,
            "refused": self.refused,
        }

    def load(self, tenant: str) -> tuple[int, int]:
        """The tenant's requests running and waiting now."""
        line = self._lines.get(tenant)
        return (0, 0) if line is None else (line.running, len(line.waiting))

    def _level(self, tenant: str) -> int:
        line = self._lines.get(tenant)
        return 0 if line is None else line.running + len(line.waiting)

    def _note(self, tenant: str) -> None:
        """Keep the tenant's peak demand: raised at once, lowered once the window passed."""
        level, now = self._level(tenant), self._clock()
        peak, at = self._peaks.get(tenant, (0, -math.inf))
        if level >= peak or now - at > self._active_window_s:
            self._peaks[tenant] = (level, now)

    def demands(self) -> dict[str, int]:
        """Each tenant at work: what it runs and has waiting, or its peak within the window.

        Every tenant with requests in the gate has a peak (``_note`` on each request that
        enters its line), and a peak is at least one, so this one pass finds them all.
        """
        cutoff = self._clock() - self._active_window_s
        out: dict[str, int] = {}
        for tenant, (peak, at) in list(self._peaks.items()):
            level = self._level(tenant)
            if at >= cutoff:
                out[tenant] = max(level, peak)
            elif level:
                out[tenant] = level  # the peak is past the window: what it asks for now
            else:
                del self._peaks[tenant]  # gone quiet
        return out

    def share(self, tenant: str, demands: dict[str, int] | None = None) -> int:
        """How many requests ``tenant`` may run now, beside the others' demands (``demands()``
        unless given: one reading serves every line a release looks at)."""
        current = self.demands() if demands is None else demands
        others = [d for t, d in current.items() if t != tenant]
        return max(1, math.ceil(water_level(self.concurrency, others) - 1e-9))

    async def enter(self, tenant: str) -> Callable[[], None]:
        """Wait for one of the tenant's turns; returns the function that gives it back
        (call it exactly when the request ends, or earlier; it is idempotent).

        Raises:
            TooManyRequests: the tenant's line is full (``tenant_busy``).
        """
        await self._acquire(tenant)
        given_back = False

        def give_back() -> None:
            nonlocal given_back
            if not given_back:
                given_back = True
                self._release(tenant)

        return give_back

    async def _acquire(self, tenant: str) -> None:
        line = self._lines.setdefault(tenant, _Line())
        share = self.share(tenant)
        if line.running < share and not line.waiting:
            line.running += 1
            self._note(tenant)
            return
        if len(line.waiting) >= self.queue:
            self.refused += 1
            at_work = len(self.demands())  # this tenant among them: it runs at least one
            raise TooManyRequests(
                f"{line.running} requests of this tenant are running and {len(line.waiting)} "
                f"waiting; its share is {share} running (SIEVE_API_TENANT_CONCURRENCY="
                f"{self.concurrency}, shared by the {at_work} tenants at work) and "
                f"{self.queue} waiting (SIEVE_API_TENANT_QUEUE): retry later, or send fewer "
                "at once",
                code="tenant_busy",
                retry_after=self._retry_after_s,
            )
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line.waiting.append(turn)
        self._note(tenant)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release(tenant)  # handed a turn just as it was cancelled: pass it on
            else:
                if turn in line.waiting:
                    line.waiting.remove(turn)
                self._forget_if_idle(tenant, line)
            raise

    def _release(self, tenant: str) -> None:
        line = self._lines[tenant]
        line.running -= 1
        # This tenant's line first (its turn passes on while it is within its share), then
        # any other line a grown share lets go (a tenant gone quiet freed its part).
        demands = self.demands()
        self._start_waiting(line, self.share(tenant, demands))
        for other, other_line in list(self._lines.items()):
            if other_line is not line and other_line.waiting:
                self._start_waiting(other_line, self.share(other, demands))
        self._forget_if_idle(tenant, line)

    @staticmethod
    def _start_waiting(line: _Line, share: int) -> None:
        while line.waiting and line.running < share:
            nxt = line.waiting.popleft()
            if not nxt.done():  # a cancelled waiter's future: skip it
                nxt.set_result(None)
                line.running += 1

    def _forget_if_idle(self, tenant: str, line: _Line) -> None:
        if line.running == 0 and not line.waiting:
            self._lines.pop(tenant, None)


def release_turn(scope_state: dict[str, object]) -> None:
    """Give the request's turn back now (a request that from here on only waits)."""
    give_back = scope_state.pop(_TURN, None)
    if callable(give_back):
        give_back()


def keep_turn(scope_state: dict[str, object], give_back: Callable[[], None]) -> None:
    """Where :func:`release_turn` finds the request's turn."""
    scope_state[_TURN] = give_back
