"""Per-tenant bounds the API enforces itself: upload requests in flight."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.errors import QuotaExceeded

__all__ = ["UploadSlots"]

# An upload takes seconds (reading the body, saving the blobs): retry about then.
_RETRY_AFTER_S = 1.0


class UploadSlots:
    """At most ``limit`` upload requests per tenant at once in this process.

    Counted on the event loop (no await between the check and the increment), and held
    only by live requests: a crash frees them all, nothing can leak.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: dict[str, int] = {}

    def held(self, tenant: str) -> int:
        """The tenant's uploads in flight now."""
        return self._held.get(tenant, 0)

    @asynccontextmanager
    async def hold(self, tenant: str) -> AsyncIterator[None]:
        """One slot for the block, or ``QuotaExceeded`` (429 + Retry-After) at once."""
        held = self.held(tenant)
        if held >= self.limit:
            raise QuotaExceeded(
                f"{held} uploads of this tenant are in flight; the quota is {self.limit}: "
                "retry when one has been answered",
                quota="uploads_in_flight",
                limit=self.limit,
                current=held,
                retry_after=_RETRY_AFTER_S,
            )
        self._held[tenant] = held + 1
        try:
            yield
        finally:
            left = self._held[tenant] - 1
            if left:
                self._held[tenant] = left
            else:
                del self._held[tenant]
