"""When a document expires: the upload's ``expires_at`` or ``ttl_s``, validated (pure).

An expiry is kept as a Unix timestamp (seconds, UTC); clients see it as ISO-8601 with an
offset. A document is expired once ``now >= expires_at`` (README, "Expiry").
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from core.errors import InvalidInput

__all__ = ["expired", "expires_iso", "parse_expires_at", "upload_expiry", "valid_ttl"]


def valid_ttl(ttl_s: float, *, max_ttl_s: float, field: str = "ttl_s") -> float:
    """``ttl_s`` when it is a positive number of seconds no longer than ``max_ttl_s``.

    Raises:
        InvalidInput: not positive, not finite, or over the bound (``SIEVE_API_MAX_TTL_S``).
    """
    if not math.isfinite(ttl_s) or ttl_s <= 0:
        raise InvalidInput(
            f"{field} must be a positive number of seconds", code="invalid_expiry", field=field
        )
    if ttl_s > max_ttl_s:
        raise InvalidInput(
            f"{field} of {ttl_s:g} s; the limit is {max_ttl_s:g} s (SIEVE_API_MAX_TTL_S)",
            code="invalid_expiry",
            field=field,
        )
    return ttl_s


def parse_expires_at(raw: str, *, now: float, max_ttl_s: float) -> float:
    """The timestamp of a timezone-aware ISO-8601 ``expires_at``, in the future, in bounds.

    Raises:
        InvalidInput: not ISO-8601, without a UTC offset (a naive time means a different
            instant on every server), already past (``expiry_in_past``: an upload never
            stores a document that is dead on arrival), or further ahead than the bound.
    """
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError as exc:
        raise InvalidInput(
            "expires_at must be an ISO-8601 timestamp with a UTC offset, e.g. 2030-01-31T12:00:00Z",
            code="invalid_expiry",
            field="expires_at",
        ) from exc
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInput(
            "expires_at needs a UTC offset (Z or +hh:mm): a naive time is ambiguous",
            code="invalid_expiry",
            field="expires_at",
        )
    at = when.timestamp()
    if at <= now:
        raise InvalidInput(
            f"expires_at {raw.strip()!r} is not in the future (now {expires_iso(now)})",
            code="expiry_in_past",
            field="expires_at",
        )
    valid_ttl(at - now, max_ttl_s=max_ttl_s, field="expires_at")
    return at


def upload_expiry(
    expires_at: str | None, ttl_s: float | None, *, now: float, max_ttl_s: float
) -> float | None:
    """The expiry an upload asks for (``expires_at`` or ``now + ttl_s``), None for neither.

    Raises:
        InvalidInput: both given, or either invalid.
    """
    if expires_at is not None and ttl_s is not None:
        raise InvalidInput(
            "give expires_at or ttl_s, not both", code="invalid_expiry", field="expires_at"
        )
    if expires_at is not None:
        return parse_expires_at(expires_at, now=now, max_ttl_s=max_ttl_s)
    if ttl_s is not None:
        return now + valid_ttl(ttl_s, max_ttl_s=max_ttl_s)
    return None


def expires_iso(at: float) -> str:
    """A timestamp as ISO-8601 in UTC (``...Z``), to the millisecond."""
    text = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def expired(expires_at: float | None, now: float) -> bool:
    """Whether a document with this expiry is expired at ``now``."""
    return expires_at is not None and expires_at <= now
