"""Pure parts of the embeddings client: packing, pacing, Retry-After."""

from __future__ import annotations

import httpx2
import openai
import pytest

from core.errors import UpstreamUnavailable
from ingest.embeddings_client import RatePacer, RetryPolicy, estimate_tokens, pack_batches


def test_batches_respect_token_and_item_caps_in_order() -> None:
    batches = pack_batches([100, 100, 100, 500, 10, 10], max_tokens=250, max_items=3)
    assert [list(b) for b in batches] == [[0, 1], [2], [3], [4, 5]]
    assert [list(b) for b in pack_batches([1] * 7, 10_000, 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    # An item over the token cap still goes, alone.
    assert [list(b) for b in pack_batches([900], 100, 10)] == [[0]]
    assert pack_batches([], 100, 10) == []


def _rate_limited(retry_after: str | None) -> openai.RateLimitError:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    request = httpx2.Request("POST", "http://hub.test/v1/embeddings")
    response = httpx2.Response(429, headers=headers, request=request)
    return openai.RateLimitError("slow down", response=response, body=None)


def test_retry_after_is_a_floor_under_the_backoff() -> None:
    policy = RetryPolicy(backoff_s=0.5, max_backoff_s=20.0, rng=lambda: 0.0)
    assert policy.delay_or_raise(_rate_limited("3"), 0, "m") == 3.0
    # A short hint does not shorten the backoff (it used to be taken as is: 0.1 s).
    assert policy.delay_or_raise(_rate_limited("0.1"), 3, "m") == 2.0
    assert policy.delay_or_raise(_rate_limited(None), 3, "m") == 2.0


def test_a_retry_after_over_the_cap_is_not_waited_for() -> None:
    # It used to be cut to the cap (20 s) and retried into the same refusal.
    policy = RetryPolicy(max_retry_after_s=20.0, rng=lambda: 0.0)
    with pytest.raises(UpstreamUnavailable) as info:
        policy.delay_or_raise(_rate_limited("60"), 0, "m")
    assert info.value.retry_after == 60.0
    assert policy.delay_or_raise(_rate_limited("20"), 0, "m") == 20.0


def test_pacer_spaces_requests_at_its_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    pacer = RatePacer(rate=5.0, burst=2.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(6):
        pacer.acquire()
    # Two from the burst, then one every 0.2 s.
    assert len(slept) == 4
    assert abs(sum(slept) - 0.8) < 1e-9


def test_token_estimate_grows_with_text() -> None:
    assert estimate_tokens("") == 1
    assert estimate_tokens("word " * 100) > estimate_tokens("word " * 10)
