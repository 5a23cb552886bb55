"""The one retry rule, and the client's copy of it held to the same table of cases.

``core.retry`` serves the reranker and the embeddings client; ``sieve_client.retry`` (a copy:
the client may not import the server) serves ``sieve_client`` and so the CLI. Every case
below runs against both, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest
import sieve_client.retry

import core.retry

_NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
IMPLEMENTATIONS = [
    pytest.param(core.retry, id="core"),
    pytest.param(sieve_client.retry, id="sieve_client"),
]


def _rng(value: float) -> Callable[[], float]:
    return lambda: value


# (function, keyword arguments, expected)
CASES: list[tuple[str, dict[str, Any], float | None]] = [
    # Retry-After: delta-seconds or an HTTP date; unreadable or absent is None.
    ("parse_retry_after", {"value": "2"}, 2.0),
    ("parse_retry_after", {"value": " 0.5 "}, 0.5),
    ("parse_retry_after", {"value": "0"}, 0.0),
    ("parse_retry_after", {"value": "-3"}, 0.0),
    ("parse_retry_after", {"value": "Thu, 01 Jan 2026 12:00:30 GMT"}, 30.0),
    ("parse_retry_after", {"value": "Thu, 01 Jan 2026 11:59:00 GMT"}, 0.0),  # past: go now
    ("parse_retry_after", {"value": None}, None),
    ("parse_retry_after", {"value": ""}, None),
    ("parse_retry_after", {"value": "soon"}, None),
    ("parse_retry_after", {"value": "nan"}, None),
    # Backoff: exponential, capped, jitter within [ceiling / 2, ceiling].
    *[
        ("backoff_delay", {"attempt": a, "base_s": 0.5, "max_s": 4.0, "rng": _rng(1.0)}, d)
        for a, d in enumerate([0.5, 1.0, 2.0, 4.0, 4.0, 4.0])
    ],
    ("backoff_delay", {"attempt": 2, "base_s": 0.5, "max_s": 4.0, "rng": _rng(0.0)}, 1.0),
    ("backoff_delay", {"attempt": 2, "base_s": 0.5, "max_s": 4.0, "rng": _rng(0.5)}, 1.5),
    # Retry-After is a floor, never shortened ...
    (
        "backoff_delay",
        {"attempt": 0, "base_s": 0.5, "max_s": 4.0, "retry_after": 3.0, "rng": _rng(1.0)},
        3.0,
    ),
    (
        "backoff_delay",
        {"attempt": 3, "base_s": 0.5, "max_s": 4.0, "retry_after": 0.1, "rng": _rng(1.0)},
        4.0,
    ),
    # ... and one over the caller's cap is not waited for: give up (None).
    *[
        (
            "retry_delay",
            {
                "attempt": attempt,
                "retry_after": retry_after,
                "base_s": 0.5,
                "max_s": 10.0,
                "max_retry_after_s": 10.0,
                "rng": _rng(0.0),
            },
            expected,
        )
        for attempt, retry_after, expected in [
            (0, None, 0.25),
            (2, None, 1.0),
            (0, 2.0, 2.0),
            (0, 10.0, 10.0),  # exactly the cap: waited
            (0, 10.5, None),
            (0, 3600.0, None),
            (3, 0.0, 2.0),  # "Retry-After: 0" does not skip the backoff
        ]
    ],
]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(("name", "kwargs", "expected"), CASES)
def test_both_implementations_follow_one_table(
    impl: ModuleType, name: str, kwargs: dict[str, Any], expected: float | None
) -> None:
    function = getattr(impl, name)
    if name == "parse_retry_after":
        kwargs = {**kwargs, "now": _NOW}
        assert function(kwargs.pop("value"), **kwargs) == expected
    else:
        assert function(**kwargs) == expected


def test_the_copy_has_the_same_functions() -> None:
    assert set(sieve_client.retry.__all__) == set(core.retry.__all__) - {"RETRYABLE_STATUSES"}


def test_only_transient_statuses_are_retryable() -> None:
    assert {429, 500, 502, 503, 504} == core.retry.RETRYABLE_STATUSES
    assert not {400, 401, 404, 413, 501} & core.retry.RETRYABLE_STATUSES
