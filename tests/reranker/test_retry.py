"""Retry decisions: Retry-After in both forms, backoff growth, jitter and the Retry-After floor."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reranker.retry import RETRYABLE_STATUSES, backoff_delay, parse_retry_after

_NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2", 2.0),
        (" 0.5 ", 0.5),
        ("0", 0.0),
        ("-3", 0.0),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),  # HTTP date, 30 s ahead
        ("Thu, 01 Jan 2026 11:59:00 GMT", 0.0),  # in the past: go now
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=_NOW) == seconds


def test_only_transient_statuses_are_retryable() -> None:
    assert {429, 500, 502, 503, 504} == RETRYABLE_STATUSES
    assert not {400, 401, 404, 413, 501} & RETRYABLE_STATUSES


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    delays = [backoff_delay(a, base_s=0.5, max_s=4.0, rng=lambda: 1.0) for a in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_jitter_stays_within_half_to_full() -> None:
    assert backoff_delay(2, base_s=0.5, max_s=4.0, rng=lambda: 0.0) == 1.0
    assert backoff_delay(2, base_s=0.5, max_s=4.0, rng=lambda: 0.5) == 1.5


def test_retry_after_is_a_floor() -> None:
    assert backoff_delay(0, base_s=0.5, max_s=4.0, retry_after=3.0, rng=lambda: 1.0) == 3.0
    assert backoff_delay(3, base_s=0.5, max_s=4.0, retry_after=0.1, rng=lambda: 1.0) == 4.0
