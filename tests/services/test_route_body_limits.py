"""A route with a body limit of its own (a restore's bundle) gets it; others keep theirs."""

from __future__ import annotations

from services.api.body_limits import LimitPolicy


class _Route:
    path = "/v1/collections/restore"


def test_a_route_of_its_own_gets_its_own_limit() -> None:
    policy = LimitPolicy(
        default_bytes=10,
        upload_bytes=100,
        file_part_bytes=50,
        route_bytes={("POST", "/v1/collections/restore"): 1000},
    )
    assert policy.for_scope({"method": "POST", "route": _Route()}) == (1000, False)
    assert policy.for_scope({"method": "GET", "route": _Route()}) == (10, False)
    assert policy.for_scope({"method": "POST"}) == (10, False)
