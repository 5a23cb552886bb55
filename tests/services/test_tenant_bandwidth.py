"""Each tenant's bytes are paced past its rate (services/api/tenant_bandwidth.py)."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from services.api.tenant_bandwidth import TenantBandwidth
from tests.clocks import FakeClock

MIB = 1024 * 1024


def test_a_burst_is_free_then_bytes_wait_at_the_rate() -> None:
    clock = FakeClock(100.0)
    bw = TenantBandwidth(bytes_per_s=MIB, burst_s=1.0, clock=clock)
    assert bw.delay("a", MIB) == 0.0  # one second of bytes: the burst
    assert bw.delay("a", MIB // 2) == pytest.approx(0.5)
    assert bw.delay("a", MIB // 2) == pytest.approx(1.0)
    clock.now += 1.0  # a second later the debt is a second smaller
    assert bw.delay("a", 0) == 0.0
    assert bw.delay("a", MIB) == pytest.approx(1.0)
    # Another tenant has its own account.
    assert bw.delay("b", MIB) == 0.0


def test_an_idle_tenant_starts_again_with_its_burst() -> None:
    clock = FakeClock(100.0)
    bw = TenantBandwidth(bytes_per_s=MIB, burst_s=0.5, clock=clock)
    assert bw.delay("a", 2 * MIB) == pytest.approx(1.5)
    clock.now += 10
    assert bw.delay("a", MIB // 2) == 0.0


def test_zero_is_no_bound() -> None:
    bw = TenantBandwidth(bytes_per_s=0, burst_s=1.0)
    assert bw.delay("a", 1 << 40) == 0.0
    receive, send = object(), object()
    assert bw.wrap("a", receive, send) == (receive, send)  # type: ignore[arg-type]


def test_paid_up_accounts_are_forgotten() -> None:
    clock = FakeClock(100.0)
    bw = TenantBandwidth(bytes_per_s=MIB, burst_s=1.0, clock=clock)
    for n in range(200):
        bw.delay(f"t{n}", 10)
    clock.now += 5
    bw.delay("late", 10)
    assert len(bw._accounts) <= 65


def test_wrapped_receive_and_send_wait_past_the_rate() -> None:
    # Real time: 256 KiB/s with 0.1 s of burst; 128 KiB in and 128 KiB out must take
    # at least (256 KiB / 256 KiB/s) - 0.1 s = 0.9 s.
    bw = TenantBandwidth(bytes_per_s=256 * 1024, burst_s=0.1)
    chunk = b"x" * (64 * 1024)
    inbound: list[Message] = [{"type": "http.request", "body": chunk, "more_body": True}] * 2
    sent: list[Message] = []

    async def receive() -> Message:
        return inbound.pop()

    async def send(message: Message) -> None:
        sent.append(message)

    async def run() -> float:
        paced_receive, paced_send = bw.wrap("a", receive, send)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await paced_receive()
        await paced_receive()
        await paced_send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(2):
            await paced_send({"type": "http.response.body", "body": chunk, "more_body": True})
        return loop.time() - started

    elapsed = asyncio.run(run())
    assert elapsed >= 0.85
    assert len(sent) == 3
    state = bw.saturation()
    # 0.15 s, then 0.25 s for each further chunk: the start message costs nothing.
    assert state["paced"] == 4
    assert state["pacing"] == 0
    assert state["paced_s"] == pytest.approx(0.9, abs=0.05)
