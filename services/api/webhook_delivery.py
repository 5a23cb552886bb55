"""The webhook delivery loop: a background task of the API process.

Each round claims up to ``concurrency`` due deliveries from the outbox (each under a lease
of three request timeouts plus 5 s: a sender killed mid-request leaves it to be claimed
again when the lease ends, so delivery is at least once), sends them at once, and settles
each attempt: a 2xx is done; anything else (3xx included: redirects are not followed,
timeouts, refused connections, 5xx) is retried with the backoff of ``core/retry.py``
(honouring a 429/503's Retry-After up to ``backoff_max_s``) until ``max_attempts`` or
``max_age_s``. A target the SSRF guard refuses, or a subscription deleted meanwhile, ends
the delivery at once. Every attempt is logged in the subscription's deliveries.

Logs name the subscription and delivery ids, never a secret, a URL or an address.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from core.errors import InvalidInput, SieveError, UpstreamUnavailable
from core.retry import backoff_delay, parse_retry_after
from core.settings import WebhookSettings
from indexing.webhooks import Delivery, Subscription, WebhookStore
from services.api.webhook_targets import Resolver, TargetPolicy, resolve_target, system_resolver

__all__ = ["Attempt", "WebhookSender", "webhook_loop"]

log = logging.getLogger("sieve.webhooks")

# A lease outlives the request it covers (connect, write and read may each take the
# timeout) by this much, so a live sender settles first.
_LEASE_MARGIN_S = 5.0
_USER_AGENT = "Sieve-Webhooks/1"


@dataclass(frozen=True)
class Attempt:
    """What one attempt came to: ``ok``, else whether to try again, and why (a short code)."""

    ok: bool
    retry: bool
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    duration_ms: float = 0.0


def signed_headers(
    sub: Subscription, delivery: Delivery, body: bytes, now: datetime
) -> dict[str, str]:
    """The Standard Webhooks headers: webhook-id (the same at every attempt), -timestamp,
    -signature (HMAC-SHA256 of ``id.timestamp.body`` with the subscription's secret)."""
    signature = Webhook(sub.secret).sign(delivery.msg_id, now, body)
    return {
        "webhook-id": delivery.msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": _USER_AGENT,
    }


class WebhookSender:
    """Sends one delivery to its subscription's target, through the SSRF guard."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        policy: TargetPolicy,
        *,
        timeout_s: float,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._client = client
        self._policy = policy
        self._timeout = httpx.Timeout(timeout_s)
        self._resolver = resolver

    async def send(self, sub: Subscription, delivery: Delivery) -> Attempt:
        """One attempt; never raises for the target's failures."""
        started = time.perf_counter()

        def took() -> float:
            return round((time.perf_counter() - started) * 1000, 1)

        try:
            target = await resolve_target(self._policy, sub.url, resolver=self._resolver)
        except UpstreamUnavailable as exc:
            return Attempt(ok=False, retry=True, error=exc.code, duration_ms=took())
        except InvalidInput as exc:
            return Attempt(ok=False, retry=False, error=exc.code, duration_ms=took())
        body = delivery.body()
        headers = signed_headers(sub, delivery, body, datetime.now(UTC))
        headers["host"] = target.host_header()
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
        try:
            # Streamed and not read: a target's answer body costs nothing, however large.
            async with self._client.stream(
                "POST",
                target.request_url(),
                content=body,
                headers=headers,
                timeout=self._timeout,
                extensions=extensions,
                follow_redirects=False,
            ) as resp:
                status = resp.status_code
                retry_after = parse_retry_after(resp.headers.get("retry-after"))
        except httpx.TimeoutException:
            return Attempt(ok=False, retry=True, error="timeout", duration_ms=took())
        except httpx.HTTPError as exc:
            # The class name only: httpx's messages may carry the address connected to.
            return Attempt(ok=False, retry=True, error=type(exc).__name__, duration_ms=took())
        if 200 <= status < 300:
            return Attempt(ok=True, retry=False, status=status, duration_ms=took())
        error = "redirect_not_followed" if 300 <= status < 400 else f"http_{status}"
        return Attempt(
            ok=False,
            retry=True,
            status=status,
            error=error,
            retry_after=retry_after if status in (429, 503) else None,
            duration_ms=took(),
        )


def next_try(
    attempt: Attempt,
    delivery: Delivery,
    settings: WebhookSettings,
    *,
    now: float,
    rng: Callable[[], float],
) -> float | None:
    """When to try again (epoch seconds), or None: done, or given up."""
    if attempt.ok or not attempt.retry or delivery.attempt >= settings.max_attempts:
        return None
    retry_after = None
    if attempt.retry_after is not None:
        retry_after = min(attempt.retry_after, settings.backoff_max_s)
    delay = backoff_delay(
        delivery.attempt - 1,
        base_s=settings.backoff_base_s,
        max_s=settings.backoff_max_s,
        retry_after=retry_after,
        rng=rng,
    )
    if now + delay - delivery.created > settings.max_age_s:
        return None
    return now + delay


def _outcome(delivery: Delivery, attempt: Attempt, retry_at: float | None) -> dict[str, Any]:
    if attempt.ok:
        status = "delivered"
    elif retry_at is not None:
        status = "retrying"
    else:
        status = "failed"
    return {
        "delivery_id": delivery.id,
        "webhook_id": delivery.msg_id,
        "type": delivery.type,
        "attempt": delivery.attempt,
        "status": status,
        "http_status": attempt.status,
        "error": attempt.error,
        "at": time.time(),
        "duration_ms": attempt.duration_ms,
        "next_attempt_at": retry_at,
        "event_created_at": delivery.created,
    }


async def deliver_one(
    store: WebhookStore,
    sender: WebhookSender,
    delivery: Delivery,
    settings: WebhookSettings,
    *,
    rng: Callable[[], float] = random.random,
) -> Attempt:
    """Try one claimed delivery and settle it."""
    sub = await asyncio.to_thread(store.find, delivery.tenant, delivery.collection, delivery.sub)
    if sub is None:  # deleted meanwhile: nothing to log it in
        await asyncio.to_thread(store.settle, delivery, None, None)
        return Attempt(ok=False, retry=False, error="webhook_deleted")
    attempt = await sender.send(sub, delivery)
    retry_at = next_try(attempt, delivery, settings, now=time.time(), rng=rng)
    await asyncio.to_thread(store.settle, delivery, _outcome(delivery, attempt, retry_at), retry_at)
    if not attempt.ok:
        log.info(
            "webhook attempt failed",
            extra={
                "webhook": sub.id,
                "delivery": delivery.id,
                "attempt": delivery.attempt,
                "error": attempt.error,
                "will_retry": retry_at is not None,
            },
        )
    return attempt


async def webhook_loop(
    store: WebhookStore, sender: WebhookSender, settings: WebhookSettings
) -> None:
    """Deliver due events until cancelled, ``concurrency`` at a time: a slow target holds
    one slot, not the round."""
    lease_s = 3 * settings.timeout_s + _LEASE_MARGIN_S
    running: set[asyncio.Task[Attempt]] = set()
    try:
        while True:
            batch: list[Delivery] = []
            free = settings.concurrency - len(running)
            if free > 0:
                try:
                    batch = await asyncio.to_thread(store.claim, free, lease_s)
                except SieveError as exc:  # Redis away: the outbox waits for it
                    log.warning("webhook delivery paused", extra={"error": exc.code})
            for delivery in batch:
                running.add(asyncio.create_task(deliver_one(store, sender, delivery, settings)))
            if running and (not batch or len(running) >= settings.concurrency):
                await asyncio.wait(
                    running, timeout=settings.poll_s, return_when=asyncio.FIRST_COMPLETED
                )
            elif not running:
                await asyncio.sleep(settings.poll_s)
            for task in [t for t in running if t.done()]:
                running.discard(task)
                if task.exception() is not None:  # settled by nobody: the lease ends it
                    log.warning(
                        "webhook delivery not settled",
                        extra={"error": type(task.exception()).__name__},
                    )
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
