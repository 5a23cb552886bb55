"""Readiness checks: every dependency a request needs answers, each within a short timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from core.errors import SieveError
from services.api.deps import ApiDeps, in_thread

__all__ = ["degraded_reasons", "readiness", "ready_body"]

_TIMEOUT_S = 3.0


async def _ok(check: Awaitable[object]) -> bool:
    try:
        result = await asyncio.wait_for(check, _TIMEOUT_S)
    except (TimeoutError, SieveError, OSError):
        return False
    except Exception:  # noqa: BLE001 - any SDK failure means "not ready", never a 500
        return False
    return result is not False


async def _answers(check: Awaitable[object]) -> bool:
    """True once ``check`` returns at all (its value does not matter)."""
    await check
    return True


async def readiness(deps: ApiDeps) -> dict[str, bool]:
    """``{"redis": ..., "store": ..., "hub": ...}``."""
    redis_ok, store_ok, hub_ok = await asyncio.gather(
        _ok(in_thread(deps.state.ping)),
        _ok(_answers(deps.store.collection_exists("sieve-readiness-probe"))),
        _ok(deps.query.catalog.listing()),
    )
    return {"redis": redis_ok, "store": store_ok, "hub": hub_ok}


async def degraded_reasons(deps: ApiDeps) -> list[str]:
    """Why the API serves but is close to refusing writes (empty when it is not).

    Redis runs with ``noeviction``: past ``maxmemory`` every write is refused, so the
    pressure is reported from ``memory_warn_ratio`` of it on, before writes fail.
    """
    try:
        used, limit = await asyncio.wait_for(in_thread(deps.state.memory), _TIMEOUT_S)
    except (TimeoutError, SieveError):
        return []
    if limit <= 0 or used < deps.redis_memory_warn_ratio * limit:
        return []
    return [
        f"redis_memory: Redis uses {used / limit:.0%} of its maxmemory; "
        "writes are refused when it is full"
    ]


async def ready_body(deps: ApiDeps, checks: dict[str, bool]) -> dict[str, object]:
    """``/readyz``'s answer when every check passed: ready, or degraded with its reasons."""
    reasons = await degraded_reasons(deps)
    pools = deps.pools.saturation()
    shares = {"pools": pools, "bandwidth": deps.pools.bandwidth.saturation()}
    if reasons:
        return {"status": "degraded", "checks": checks, "reasons": reasons, **shares}
    return {"status": "ready", "checks": checks, **shares}
