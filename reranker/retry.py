"""Retry decisions: which statuses to retry, Retry-After parsing, backoff with jitter."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RETRYABLE_STATUSES", "backoff_delay", "parse_retry_after"]

# 500 is documented by IONOS as transient; 501/505 and friends will not heal on a retry.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date); None if absent.

    A date in the past means "now" (0.0); an unreadable value is ignored (None).
    """
    if value is None or not value.strip():
        return None
    raw = value.strip()
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        return None if math.isnan(seconds) else max(0.0, seconds)
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def backoff_delay(
    attempt: int,
    *,
    base_s: float,
    max_s: float,
    retry_after: float | None = None,
    rng: Callable[[], float],
) -> float:
    """Delay before retry number ``attempt`` (0-based): exponential with jitter, >= Retry-After.

    Jitter spreads the retries of concurrent requests so they do not hit the rate limit
    together again; the peer's ``Retry-After`` is a floor, never shortened.
    """
    ceiling = min(max_s, base_s * 2.0**attempt)
    delay = ceiling / 2 + rng() * ceiling / 2
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
