"""Numbers a JSON document may carry into Sieve: finite, and integers that fit in 64 bits.

Python's JSON reader accepts ``NaN``, ``Infinity`` and integers of any size; Qdrant keeps
payload integers as signed 64-bit and JSON answers cannot hold a NaN. One rule, used by the
record reader (metadata) and by the API (any request body), so both name the same field
the same way.
"""

from __future__ import annotations

import math
from typing import TypeAlias

from core.types import INT64_MAX, INT64_MIN

__all__ = ["first_bad_number", "number_problem"]

# A field's path as a linked list, (parent's path, segment), so no value copies its path.
_Path: TypeAlias = "tuple[_Path, str] | None"


def number_problem(value: object) -> str | None:
    """Why ``value`` is a number Sieve cannot keep, or None (also for non-numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value} is not a number"
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return "integer out of the 64-bit range"
    return None


def first_bad_number(value: object, root: str = "") -> tuple[str, str] | None:
    """The first (field, problem) in a decoded JSON value, depth first; None when all are fine.

    Fields are named as the API names them: ``filter.metadata.year``, ``metadata.tags[2]``.
    Walked without recursion and without building a path per value (each value keeps a
    link to its parent's), so any nesting depth costs time linear in the value's size.
    """
    stack: list[tuple[_Path, object]] = [(None, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            stack.extend(((path, f".{k}"), v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend(((path, f"[{i}]"), v) for i, v in reversed(list(enumerate(item))))
        elif (problem := number_problem(item)) is not None:
            return _render(path, root), problem
    return None


def _render(path: _Path, root: str) -> str:
    parts: list[str] = []
    while path is not None:
        path, segment = path
        parts.append(segment)
    name = root + "".join(reversed(parts))
    return name.removeprefix(".") if not root else name
