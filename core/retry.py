"""The one retry rule: ``Retry-After`` parsing, backoff with jitter, and when to give up.

Every caller that retries an HTTP peer (the reranker, the embeddings client, the CLI through
``sieve_client``) uses these, so they agree on one documented rule:

- the wait before retry ``attempt`` (0-based) is exponential backoff with jitter,
  ``ceiling = min(max_s, base_s * 2**attempt)``, drawn from ``[ceiling / 2, ceiling]``;
- the peer's ``Retry-After`` is a floor, never shortened: ``delay = max(backoff, retry_after)``;
- a ``Retry-After`` over the caller's ``max_retry_after_s`` is not waited for at all: the
  caller gives up at once and surfaces the retryable error (with the hint), because waiting
  that long would outlast the call it serves, and waiting less would only be refused again.

``clients/python/sieve_client/retry.py`` carries a copy (the client must not import the
server); ``tests/core/test_retry.py`` pins both to one table of cases.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RETRYABLE_STATUSES", "backoff_delay", "parse_retry_after", "retry_delay"]

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


def retry_delay(
    attempt: int,
    *,
    retry_after: float | None,
    base_s: float,
    max_s: float,
    max_retry_after_s: float,
    rng: Callable[[], float],
) -> float | None:
    """The wait before retry ``attempt`` (0-based), or None: give up now (the rule above).

    The caller decides first whether the failure is retryable and within its retry count;
    this only says how long to wait, or that ``retry_after`` is over ``max_retry_after_s``.
    """
    if retry_after is not None and retry_after > max_retry_after_s:
        return None
    return backoff_delay(attempt, base_s=base_s, max_s=max_s, retry_after=retry_after, rng=rng)
