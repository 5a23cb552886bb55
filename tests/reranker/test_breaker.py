"""The circuit breaker: consecutive failures open it; after the cool-down one probe passes."""

from __future__ import annotations

import pytest

from reranker.breaker import BreakerState, CircuitBreaker
from tests.clocks import FakeClock


def _state(breaker: CircuitBreaker) -> BreakerState:
    # A call, not the property: mypy would otherwise keep the first narrowing of
    # ``breaker.state`` across the calls that change it.
    return breaker.state


def test_opens_after_consecutive_failures_only() -> None:
    clock = FakeClock(1000.0)
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=10, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # a success resets the count
    breaker.record_failure()
    breaker.record_failure()
    assert _state(breaker) is BreakerState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert _state(breaker) is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in == 10


def test_half_open_lets_one_probe_through_and_success_closes() -> None:
    clock = FakeClock(1000.0)
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=10, clock=clock)
    breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.1
    assert _state(breaker) is BreakerState.HALF_OPEN
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else waits for its verdict
    breaker.record_success()
    assert _state(breaker) is BreakerState.CLOSED
    assert breaker.allow()


def test_a_failed_probe_reopens_for_a_full_cool_down() -> None:
    clock = FakeClock(1000.0)
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=10, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    breaker.record_failure()
    assert _state(breaker) is BreakerState.OPEN
    clock.now += 9
    assert not breaker.allow()
    clock.now += 1
    assert breaker.allow()


def test_a_probe_without_verdict_is_released() -> None:
    clock = FakeClock(1000.0)
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=1, clock=clock)
    breaker.record_failure()
    clock.now += 1
    assert breaker.allow()
    breaker.release()  # e.g. the probe was cancelled
    assert breaker.allow()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
