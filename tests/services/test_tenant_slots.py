"""One per-tenant counter behind the upload quota and the wait gate (issue 19, issue 22)."""

from __future__ import annotations

import pytest

from core.errors import QuotaExceeded, TooManyRequests
from services.api.quotas import TenantSlots, UploadSlots
from services.api.waiting import WaiterGate


def test_a_tenant_holds_at_most_its_limit_and_others_are_not_counted() -> None:
    slots = TenantSlots()

    def refuse(held: int) -> TooManyRequests:
        return TooManyRequests(f"{held} held")

    with slots.hold("a", 2, refuse), slots.hold("a", 2, refuse):
        assert slots.held("a") == 2
        with slots.hold("b", 2, refuse):
            assert slots.held("b") == 1
        with pytest.raises(TooManyRequests, match="2 held"), slots.hold("a", 2, refuse):
            pass
    assert (slots.held("a"), slots.held("b")) == (0, 0)


def test_a_slot_is_released_however_the_block_ends() -> None:
    slots = UploadSlots(1)
    with pytest.raises(RuntimeError), slots.hold("a"):
        raise RuntimeError("the request failed")
    assert slots.held("a") == 0
    with slots.hold("a"), pytest.raises(QuotaExceeded) as refused, slots.hold("a"):
        pass
    assert refused.value.code == "quota_exceeded"
    assert "uploads of this tenant are in flight" in refused.value.message


def test_the_wait_gate_refuses_with_its_own_code_and_advice() -> None:
    gate = WaiterGate()
    with gate.slot("a", 1), pytest.raises(TooManyRequests) as refused, gate.slot("a", 1):
        pass
    assert refused.value.code == "too_many_waiters"
    assert "SIEVE_API_WAIT_MAX_PER_TENANT" in refused.value.message
    assert gate.held("a") == 0
