"""Each tenant's bytes through the API process: request bodies in, response bodies out.

The tenant line (services/api/tenant_gate.py) bounds how many of a tenant's requests run
at once, not what they move. Four requests at a time of one tenant moved ~135 MB/s through
the API here (8 MiB files and archives up, a 1.8 MB page image down, in a loop), and every
byte is work on the event loop and in the kernel that the other tenants wait behind
(bench/isolation.py).

Past ``SIEVE_API_TENANT_BYTES_PER_S`` (with ``SIEVE_API_TENANT_BURST_S`` seconds of it at
once) a tenant's bytes are paced, not refused: the next read of its upload waits, so the
server stops reading the socket and TCP slows the client down, and the next chunk of its
answer waits before it is sent. Nothing is lost and nothing else waits: only that tenant's
own requests take longer. The rule is GCRA (virtual scheduling): each tenant has a
theoretical time at which its bytes so far are paid for; a chunk that would push it past
``burst`` seconds from now waits until it does not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Message, Receive, Send

__all__ = ["TenantBandwidth"]


@dataclass
class _Account:
    paid_until: float = 0.0


class TenantBandwidth:
    """Per tenant, ``bytes_per_s`` with ``burst_s`` seconds of it at once; 0 is no bound."""

    def __init__(
        self,
        *,
        bytes_per_s: int,
        burst_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bytes_per_s = bytes_per_s
        self.burst_s = burst_s
        self._clock = clock
        self._accounts: dict[str, _Account] = {}
        self.pacing = 0  # chunks waiting now
        self.paced = 0  # chunks that waited, ever
        self.paced_s = 0.0  # seconds they waited

    def delay(self, tenant: str, n: int) -> float:
        """Charge ``n`` bytes to ``tenant``; the seconds to wait before moving them."""
        if self.bytes_per_s <= 0 or n <= 0:
            return 0.0
        now = self._clock()
        account = self._accounts.get(tenant)
        if account is None:
            account = self._accounts[tenant] = _Account()
        account.paid_until = max(account.paid_until, now) + n / self.bytes_per_s
        self._forget_idle(now)
        return max(0.0, account.paid_until - now - self.burst_s)

    async def take(self, tenant: str, n: int) -> None:
        """Charge ``n`` bytes; wait while the tenant is past its rate."""
        wait = self.delay(tenant, n)
        if wait <= 0:
            return
        self.pacing += 1
        self.paced += 1
        self.paced_s += wait
        try:
            await asyncio.sleep(wait)
        finally:
            self.pacing -= 1

    def wrap(self, tenant: str, receive: Receive, send: Send) -> tuple[Receive, Send]:
        """``receive`` and ``send`` whose body bytes are charged to ``tenant``."""
        if self.bytes_per_s <= 0:
            return receive, send

        async def paced_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                await self.take(tenant, len(message.get("body", b"")))
            return message

        async def paced_send(message: Message) -> None:
            if message["type"] == "http.response.body":
                await self.take(tenant, len(message.get("body", b"")))
            await send(message)

        return paced_receive, paced_send

    def saturation(self) -> dict[str, float]:
        """For ``/readyz``: the rate, chunks waiting now, chunks and seconds paced so far."""
        return {
            "bytes_per_s": self.bytes_per_s,
            "burst_s": self.burst_s,
            "pacing": self.pacing,
            "paced": self.paced,
            "paced_s": round(self.paced_s, 3),
        }

    def _forget_idle(self, now: float) -> None:
        """Drop accounts that are paid up: an idle tenant costs nothing to remember."""
        if len(self._accounts) > 64:
            for name in [t for t, a in self._accounts.items() if a.paid_until <= now]:
                del self._accounts[name]
