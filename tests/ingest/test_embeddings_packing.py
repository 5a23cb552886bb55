"""Pure parts of the embeddings client: packing, pacing, Retry-After."""

from __future__ import annotations

import email.utils
import time

from ingest.embeddings_client import RatePacer, estimate_tokens, pack_batches, retry_after_s


def test_batches_respect_token_and_item_caps_in_order() -> None:
    batches = pack_batches([100, 100, 100, 500, 10, 10], max_tokens=250, max_items=3)
    assert [list(b) for b in batches] == [[0, 1], [2], [3], [4, 5]]
    assert [list(b) for b in pack_batches([1] * 7, 10_000, 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    # An item over the token cap still goes, alone.
    assert [list(b) for b in pack_batches([900], 100, 10)] == [[0]]
    assert pack_batches([], 100, 10) == []


def test_retry_after_seconds_and_http_date() -> None:
    assert retry_after_s("3") == 3.0
    assert retry_after_s(None) is None
    assert retry_after_s("soon") is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (retry_after_s(future) or 0) <= 31


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
