"""The tenant gate's rules on one event loop: turns per tenant, a line first come first
served, refusal past the line, cancellation and early give-back leaving nothing held."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import TooManyRequests
from services.api.tenant_gate import TenantGate, keep_turn, release_turn, water_level


def _gate(concurrency: int = 2, queue: int = 2) -> TenantGate:
    return TenantGate(concurrency=concurrency, queue=queue, retry_after_s=3)


def test_turns_are_per_tenant_and_the_line_is_served_in_order() -> None:
    async def scenario() -> None:
        gate = _gate(concurrency=1, queue=3)
        first = await gate.enter("a")
        order: list[int] = []

        async def queued(n: int) -> None:
            give_back = await gate.enter("a")
            order.append(n)
            give_back()

        tasks = [asyncio.create_task(queued(n)) for n in range(3)]
        await asyncio.sleep(0)
        assert gate.load("a") == (1, 3)
        other = await gate.enter("b")  # another tenant does not wait behind "a"
        other()
        first()
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2]
        assert gate.load("a") == (0, 0)

    asyncio.run(scenario())


def test_past_the_line_the_tenant_is_refused_at_once() -> None:
    async def scenario() -> None:
        gate = _gate(concurrency=1, queue=1)
        held = await gate.enter("a")
        waiting = asyncio.create_task(gate.enter("a"))
        await asyncio.sleep(0)
        with pytest.raises(TooManyRequests) as refused:
            await gate.enter("a")
        assert refused.value.code == "tenant_busy"
        assert refused.value.retry_after == 3
        assert gate.refused == 1
        held()
        (await waiting)()
        assert gate.load("a") == (0, 0)

    asyncio.run(scenario())


def test_a_cancelled_waiter_leaves_the_line_and_holds_nothing() -> None:
    async def scenario() -> None:
        gate = _gate(concurrency=1, queue=2)
        held = await gate.enter("a")
        gone = asyncio.create_task(gate.enter("a"))
        after = asyncio.create_task(gate.enter("a"))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        assert gate.load("a") == (1, 1)
        held()
        (await after)()
        assert gate.load("a") == (0, 0)

    asyncio.run(scenario())


def test_giving_back_early_is_idempotent() -> None:
    async def scenario() -> None:
        gate = _gate(concurrency=1, queue=0)
        state: dict[str, object] = {}
        keep_turn(state, await gate.enter("a"))
        release_turn(state)  # the request only waits from here on
        release_turn(state)
        second = await gate.enter("a")  # the turn is free for the tenant's next request
        second()
        second()
        assert gate.load("a") == (0, 0)

    asyncio.run(scenario())


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("capacity", "others", "level"),
    [
        (4, [], 4.0),  # alone: every turn
        (4, [2], 2.0),  # beside a tenant asking for two: half each
        (4, [1], 3.0),  # beside one asking for one: it gets its one, this one the rest
        (4, [12], 2.0),  # beside a greedy one: half each, not less
        (4, [1, 1], 2.0),
        (4, [3, 3], 4 / 3),  # three greedy tenants: a third each (rounded up by the gate)
    ],
)
def test_the_water_level_gives_the_light_what_they_ask_and_splits_the_rest(
    capacity: int, others: list[int], level: float
) -> None:
    assert water_level(capacity, others) == pytest.approx(level)


def test_the_turns_are_shared_among_the_tenants_at_work() -> None:
    async def scenario() -> None:
        clock = _Clock()
        gate = TenantGate(concurrency=4, queue=8, retry_after_s=3, active_window_s=1.0, clock=clock)
        # Alone, a tenant may run all four.
        alone = [await gate.enter("a") for _ in range(4)]
        assert gate.load("a") == (4, 0)
        # Another tenant asking for two: each may run two. "a" keeps its four (nothing
        # is stopped) but starts no more; "b" runs at once.
        b_turns = [await gate.enter("b") for _ in range(2)]
        assert gate.share("a") == 2
        assert gate.share("b") == 2
        more = asyncio.create_task(gate.enter("a"))
        await asyncio.sleep(0)
        assert gate.load("a") == (4, 1)
        alone.pop()()
        alone.pop()()
        await asyncio.sleep(0)
        assert gate.load("a") == (2, 1), "still at its share: the waiting one waits"
        alone.pop()()
        await asyncio.sleep(0)
        assert more.done(), "under its share: the next starts"
        assert gate.load("a") == (2, 0)
        # "b" ends both; within the window its demand is still its peak of two.
        for give_back in b_turns:
            give_back()
        clock.now += 0.5
        assert gate.share("a") == 2
        waiting = [asyncio.create_task(gate.enter("a")) for _ in range(2)]
        await asyncio.sleep(0)
        assert gate.load("a") == (2, 2)
        # Past the window "a" is alone again: its next turn given back lets both start.
        clock.now += 1.0
        alone.pop()()
        await asyncio.sleep(0)
        assert gate.share("a") == 4
        assert gate.load("a") == (3, 0)
        # A tenant sending one request at a time takes one turn; "a" may run three.
        one = await gate.enter("c")
        assert gate.share("a") == 3
        assert gate.share("c") == 2  # what "c" could take: half, beside greedy "a"
        one()
        for task in (more, *waiting):
            (await task)()
        assert gate.load("a") == (0, 0)

    asyncio.run(scenario())


def test_the_refusal_names_the_share_and_the_settings() -> None:
    async def scenario() -> None:
        gate = TenantGate(concurrency=4, queue=0, retry_after_s=3)
        held = [await gate.enter("a") for _ in range(2)]
        others = [await gate.enter("b") for _ in range(2)]
        with pytest.raises(TooManyRequests) as refused:
            await gate.enter("a")
        text = str(refused.value)
        assert "its share is 2 running" in text
        assert "SIEVE_API_TENANT_CONCURRENCY=4" in text
        assert "2 tenants at work" in text
        for give_back in (*held, *others):
            give_back()

    asyncio.run(scenario())
