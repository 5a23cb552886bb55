"""The one rule for numbers in request bodies and metadata."""

from __future__ import annotations

import json

import pytest

from core.numbers import first_bad_number, number_problem


@pytest.mark.parametrize(
    ("raw", "found"),
    [
        ('{"a": 1, "b": [1.5, true, "x"]}', None),
        ('{"a": 9223372036854775807, "b": -9223372036854775808}', None),
        ('{"a": {"b": [1, NaN]}}', ("a.b[1]", "nan is not a number")),
        ('{"x": Infinity}', ("x", "inf is not a number")),
        ('{"x": -Infinity}', ("x", "-inf is not a number")),
        ('{"x": 1e400}', ("x", "inf is not a number")),
        ('{"x": 9223372036854775808}', ("x", "integer out of the 64-bit range")),
        ('{"x": -9223372036854775809}', ("x", "integer out of the 64-bit range")),
        ('[0, {"y": NaN}]', ("[1].y", "nan is not a number")),
        # Depth first, in document order: the first bad number is the one named.
        ('{"a": [NaN], "b": NaN}', ("a[0]", "nan is not a number")),
    ],
)
def test_first_bad_number_names_the_field(raw: str, found: tuple[str, str] | None) -> None:
    assert first_bad_number(json.loads(raw)) == found


def test_first_bad_number_walks_any_depth_and_skips_non_json() -> None:
    deep: object = float("nan")
    for _ in range(100_000):
        deep = [deep]
    hit = first_bad_number(deep, "body")
    assert hit is not None
    assert hit[0].startswith("body[0][0]")
    assert first_bad_number(None) is None
    assert number_problem(True) is None  # a bool is an int to Python, never a number here
