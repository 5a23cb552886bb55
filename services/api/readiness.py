"""Readiness checks: every dependency a request needs answers, each within a short timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from core.errors import SieveError
from services.api.deps import ApiDeps, in_thread

__all__ = ["readiness"]

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
