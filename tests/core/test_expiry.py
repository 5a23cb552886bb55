"""An upload's expiry: timezone-aware ISO-8601 or a bounded ttl_s, never in the past."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.expiry import expired, expires_iso, parse_expires_at, upload_expiry, valid_ttl

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
MAX = 3600.0


def test_an_aware_timestamp_in_any_offset_is_the_same_instant() -> None:
    utc = parse_expires_at("2027-01-15T08:10:00Z", now=NOW, max_ttl_s=MAX)
    cet = parse_expires_at("2027-01-15T09:10:00+01:00", now=NOW, max_ttl_s=MAX)
    assert utc == cet == NOW + 600
    assert expires_iso(utc) == "2027-01-15T08:10:00.000Z"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("2027-01-15T08:10:00", "invalid_expiry"),  # naive: which zone?
        ("tomorrow", "invalid_expiry"),
        ("", "invalid_expiry"),
        ("2027-01-15T07:59:59Z", "expiry_in_past"),
        ("2027-01-15T08:00:00Z", "expiry_in_past"),  # now is already expired
        ("2027-01-15T09:00:01Z", "invalid_expiry"),  # past SIEVE_API_MAX_TTL_S
        ("0001-01-01T00:00:00+14:00", "expiry_in_past"),  # before year 1 in UTC
        ("9999-12-31T23:59:59-23:59", "invalid_expiry"),  # after year 9999 in UTC
        ("2027-01-15T08:10:00+24:00", "invalid_expiry"),
        ("\x00", "invalid_expiry"),
    ],
)
def test_refused_expires_at(raw: str, code: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_expires_at(raw, now=NOW, max_ttl_s=MAX)
    assert err.value.code == code
    assert err.value.field == "expires_at"


@pytest.mark.parametrize("ttl", [0.0, -1.0, float("nan"), float("inf"), MAX + 1])
def test_refused_ttl(ttl: float) -> None:
    with pytest.raises(InvalidInput) as err:
        valid_ttl(ttl, max_ttl_s=MAX)
    assert (err.value.code, err.value.field) == ("invalid_expiry", "ttl_s")


def test_upload_expiry_takes_one_of_the_two() -> None:
    assert upload_expiry(None, None, now=NOW, max_ttl_s=MAX) is None
    assert upload_expiry(None, 30, now=NOW, max_ttl_s=MAX) == NOW + 30
    assert upload_expiry("2027-01-15T08:00:30Z", None, now=NOW, max_ttl_s=MAX) == NOW + 30
    with pytest.raises(InvalidInput, match="not both"):
        upload_expiry("2027-01-15T08:00:30Z", 30, now=NOW, max_ttl_s=MAX)


def test_expired_from_the_instant_itself() -> None:
    assert not expired(None, NOW)
    assert not expired(NOW + 0.001, NOW)
    assert expired(NOW, NOW)
    assert expired(NOW - 1, NOW)
