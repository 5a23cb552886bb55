"""Per-tenant bounds the API enforces itself: requests of a tenant held at once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from core.errors import QuotaExceeded, SieveError

__all__ = ["TenantSlots", "UploadSlots"]

# An upload takes seconds (reading the body, saving the blobs): retry about then.
_RETRY_AFTER_S = 1.0


class TenantSlots:
    """How many requests of each tenant hold a slot in this process, under a cap.

    Counted on the event loop (no await between the check and the increment), and held
    only by live requests: released however the request ends (an answer, an error, its
    task cancelled), so a crash frees them all and nothing can leak.
    """

    def __init__(self) -> None:
        self._held: dict[str, int] = {}

    def held(self, tenant: str) -> int:
        """The tenant's slots held now."""
        return self._held.get(tenant, 0)

    @contextmanager
    def hold(self, tenant: str, limit: int, refuse: Callable[[int], SieveError]) -> Iterator[None]:
        """One of ``tenant``'s ``limit`` slots for the block, or ``refuse(held)`` raised at once."""
        held = self.held(tenant)
        if held >= limit:
            raise refuse(held)
        self._held[tenant] = held + 1
        try:
            yield
        finally:
            left = self._held[tenant] - 1
            if left:
                self._held[tenant] = left
            else:
                del self._held[tenant]


class UploadSlots:
    """At most ``limit`` upload requests per tenant at once in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = TenantSlots()

    def held(self, tenant: str) -> int:
        """The tenant's uploads in flight now."""
        return self._slots.held(tenant)

    def hold(self, tenant: str) -> AbstractContextManager[None]:
        """One slot for the block, or ``QuotaExceeded`` (429 + Retry-After) at once."""
        return self._slots.hold(tenant, self.limit, self._refuse)

    def _refuse(self, held: int) -> SieveError:
        return QuotaExceeded(
            f"{held} uploads of this tenant are in flight; the quota is {self.limit}: "
            "retry when one has been answered",
            quota="uploads_in_flight",
            limit=self.limit,
            current=held,
            retry_after=_RETRY_AFTER_S,
        )
