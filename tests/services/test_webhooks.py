"""Webhook delivery: the SSRF guard, and the delivery loop against a real loopback receiver
and a real Redis (signatures checked by the ``standardwebhooks`` package)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis

from core.errors import InvalidInput, UpstreamUnavailable
from core.settings import WebhookSettings
from indexing.webhooks import Subscription, WebhookEvent, WebhookStore, new_secret
from services.api.webhook_delivery import WebhookSender, webhook_loop
from services.api.webhook_targets import TargetPolicy, TargetRefused, resolve_target
from tests.services.webhook_receiver import receiver

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _policy(*networks: str, hosts: Sequence[str] = ()) -> TargetPolicy:
    return TargetPolicy.from_settings(
        WebhookSettings(allow_networks=list(networks), allow_hosts=list(hosts))
    )


def _dns(table: dict[str, list[str]]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


# ------------------------------------------------------------------ the SSRF guard


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost:8080/x",  # the system resolver: a loopback address
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://10.1.2.3/x",
        "http://192.168.0.1/x",
        "http://172.16.0.1/x",
        "http://100.64.0.1/x",  # shared address space
        "http://169.254.169.254/latest/meta-data",  # cloud metadata, link-local
        "http://[fe80::1]/x",
        "http://0.0.0.0/x",
        "http://224.0.0.1/x",
    ],
)
async def test_non_global_targets_are_refused_by_default(url: str) -> None:
    with pytest.raises(TargetRefused) as err:
        await resolve_target(_policy(), url)
    assert "127.0.0" not in err.value.message
    assert "SIEVE_WEBHOOK_ALLOW_NETWORKS" in err.value.message


async def test_allowlisted_networks_pass_and_nothing_else() -> None:
    policy = _policy("127.0.0.0/8")
    target = await resolve_target(policy, "http://localhost:9/hook")
    assert target.address.startswith("127.")
    with pytest.raises(TargetRefused):
        await resolve_target(policy, "http://10.0.0.1/hook")


async def test_names_are_checked_after_resolution_and_pinned_to_the_checked_address() -> None:
    dns = _dns(
        {
            "hooks.example": ["93.184.216.34"],
            "rebind.example": ["93.184.216.34", "10.0.0.7"],  # one private answer refuses
            "internal.example": ["10.0.0.7"],
        }
    )
    target = await resolve_target(_policy(), "https://hooks.example:8443/in?x=1", resolver=dns)
    assert str(target.request_url()) == "https://93.184.216.34:8443/in?x=1"
    assert target.host_header() == "hooks.example:8443"
    for name in ("rebind.example", "internal.example"):
        with pytest.raises(TargetRefused) as err:
            await resolve_target(_policy(), f"https://{name}/in", resolver=dns)
        assert "10.0.0.7" not in err.value.message
    with pytest.raises(UpstreamUnavailable):
        await resolve_target(_policy(), "https://nowhere.example/in", resolver=dns)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "http://user:pw@example.com/x", "http:///x", "not a url"]
)
async def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        await resolve_target(_policy(), url)


async def test_a_host_allowlist_limits_targets_to_its_names() -> None:
    dns = _dns({"a.hooks.example": ["93.184.216.34"], "evil.example": ["93.184.216.34"]})
    policy = _policy(hosts=["*.hooks.example"])
    await resolve_target(policy, "https://a.hooks.example/x", resolver=dns)
    with pytest.raises(TargetRefused, match="ALLOW_HOSTS"):
        await resolve_target(policy, "https://evil.example/x", resolver=dns)


# ------------------------------------------------------------------ delivery


@pytest.fixture
def hooks(redis_url: str) -> Iterator[WebhookStore]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    store = WebhookStore(client)
    store.configure()
    yield store
    client.close()


def _settings(**changes: Any) -> WebhookSettings:
    base: dict[str, Any] = {
        "allow_networks": ["127.0.0.1/32"],
        "backoff_base_s": 0.05,
        "backoff_max_s": 0.2,
        "poll_s": 0.02,
        "timeout_s": 5.0,
    }
    return WebhookSettings(**(base | changes))


def _subscribe(hooks: WebhookStore, url: str) -> Subscription:
    return hooks.add(
        Subscription(
            id=hooks.new_id(),
            tenant="acme",
            collection="papers",
            url=url,
            events=list(WebhookEvent),
            secret=new_secret(),
        )
    )


@asynccontextmanager
async def _delivering(
    hooks: WebhookStore, settings: WebhookSettings, resolver: Any = None
) -> AsyncIterator[None]:
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
        extra = {"resolver": resolver} if resolver else {}
        sender = WebhookSender(
            client, TargetPolicy.from_settings(settings), timeout_s=settings.timeout_s, **extra
        )
        task = asyncio.create_task(webhook_loop(hooks, sender, settings))
        try:
            yield
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def _wait_settled(hooks: WebhookStore, timeout_s: float = 20.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if hooks.outbox_size() == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the outbox did not drain")


async def test_a_failing_receiver_gets_the_event_signed_after_retries(
    hooks: WebhookStore,
) -> None:
    with receiver(fail_first=2) as rx:
        sub = _subscribe(hooks, rx.url)
        rx.secret = sub.secret
        hooks.emit("acme", "papers", WebhookEvent.SNAPSHOT_COMPLETED, {"job_id": "s1"})
        async with _delivering(hooks, _settings()):
            (got,) = await asyncio.to_thread(rx.wait_for, 1)
            await _wait_settled(hooks)
        assert len(rx.calls) == 3
        assert all(c.verified for c in rx.calls)  # the receiver checked each signature
        assert len({c.headers["webhook-id"] for c in rx.calls}) == 1  # one id for all attempts
        assert len({c.body for c in rx.calls}) == 1
        event = got.event()
        assert event["type"] == "snapshot.completed"
        assert event["data"] == {"job_id": "s1"}
        assert event["timestamp"].endswith("Z")
    rows, total = hooks.deliveries(sub.id, offset=0, limit=10)
    assert total == 3
    assert [(r["attempt"], r["status"], r["http_status"]) for r in rows] == [
        (3, "delivered", 204),
        (2, "retrying", 503),
        (1, "retrying", 503),
    ]
    assert rows[1]["next_attempt_at"] > rows[1]["at"] - 1


async def test_a_receiver_that_never_answers_2xx_is_given_up_after_max_attempts(
    hooks: WebhookStore,
) -> None:
    with receiver(fail_first=100) as rx:
        sub = _subscribe(hooks, rx.url)
        hooks.emit("acme", "papers", WebhookEvent.JOB_COMPLETED, {"job_id": "j"})
        async with _delivering(hooks, _settings(max_attempts=3)):
            await _wait_settled(hooks)
        assert len(rx.calls) == 3
    rows, _ = hooks.deliveries(sub.id, offset=0, limit=10)
    assert [r["status"] for r in rows] == ["failed", "retrying", "retrying"]


async def test_redirects_are_not_followed_not_even_to_an_allowed_private_address(
    hooks: WebhookStore,
) -> None:
    with receiver("127.0.0.2") as inner, receiver(redirect_to="") as outer:
        outer.redirect_to = inner.url
        sub = _subscribe(hooks, outer.url)
        hooks.emit("acme", "papers", WebhookEvent.JOB_COMPLETED, {"job_id": "j"})
        async with _delivering(hooks, _settings(max_attempts=1)):
            await _wait_settled(hooks)
        assert len(outer.calls) == 1
        assert inner.calls == []
    (row,) = hooks.deliveries(sub.id, offset=0, limit=10)[0]
    assert (row["status"], row["http_status"], row["error"]) == (
        "failed",
        302,
        "redirect_not_followed",
    )


async def test_a_target_refused_at_delivery_time_is_not_contacted(hooks: WebhookStore) -> None:
    """The allowlist changed (or DNS did) since the subscription was made."""
    with receiver() as rx:
        sub = _subscribe(hooks, rx.url)
        hooks.emit("acme", "papers", WebhookEvent.JOB_COMPLETED, {"job_id": "j"})
        async with _delivering(hooks, _settings(allow_networks=[])):
            await _wait_settled(hooks)
        assert rx.calls == []
    (row,) = hooks.deliveries(sub.id, offset=0, limit=10)[0]
    assert (row["status"], row["error"]) == ("failed", "webhook_target_refused")


async def test_the_request_goes_to_the_checked_address_with_the_named_host(
    hooks: WebhookStore,
) -> None:
    with receiver() as rx:
        port = rx.url.split(":")[2].split("/")[0]
        sub = _subscribe(hooks, f"http://hooks.example:{port}/hook")
        rx.secret = sub.secret
        hooks.emit("acme", "papers", WebhookEvent.JOB_COMPLETED, {"job_id": "j"})
        dns = _dns({"hooks.example": ["127.0.0.1"]})
        async with _delivering(hooks, _settings(), resolver=dns):
            (call,) = await asyncio.to_thread(rx.wait_for, 1)
        assert call.headers["host"] == f"hooks.example:{port}"
        assert call.verified


_SENDER = """
import asyncio, sys
import httpx, redis
from core.settings import WebhookSettings
from indexing.webhooks import WebhookStore
from services.api.webhook_delivery import WebhookSender, webhook_loop
from services.api.webhook_targets import TargetPolicy

async def main() -> None:
    settings = WebhookSettings(allow_networks=["127.0.0.1/32"], timeout_s=0.1, poll_s=0.02)
    client = redis.Redis.from_url(sys.argv[1], decode_responses=True)
    async with httpx.AsyncClient() as http:
        sender = WebhookSender(http, TargetPolicy.from_settings(settings), timeout_s=60)
        await webhook_loop(WebhookStore(client), sender, settings)

asyncio.run(main())
"""


@pytest.mark.slow
async def test_a_sender_killed_mid_delivery_leaves_it_to_the_next_one(
    hooks: WebhookStore, redis_url: str
) -> None:
    """kill -9 of the process holding a delivery: it is delivered after the lease, once."""
    import signal  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import time  # noqa: PLC0415

    with receiver(hang_first=1, hang_s=30) as rx:
        sub = _subscribe(hooks, rx.url)
        rx.secret = sub.secret
        hooks.emit("acme", "papers", WebhookEvent.JOB_COMPLETED, {"job_id": "j"})
        proc = await asyncio.to_thread(subprocess.Popen, [sys.executable, "-c", _SENDER, redis_url])
        try:
            deadline = time.monotonic() + 60
            while not rx.calls:
                assert proc.poll() is None
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        assert hooks.outbox_size() == 1  # claimed by the dead sender, not settled
        async with _delivering(hooks, _settings(timeout_s=0.1)):
            calls = await asyncio.to_thread(rx.wait_for, 2, 30.0)
            await _wait_settled(hooks)
        # The dead sender's lease (3 x 0.1 s + 5 s from its claim, which came a moment
        # before its request: up to a second or so on a loaded machine) had to end first.
        assert calls[1].at - calls[0].at > 3.0
        assert calls[1].verified
        assert calls[0].headers["webhook-id"] == calls[1].headers["webhook-id"]
    rows, _ = hooks.deliveries(sub.id, offset=0, limit=10)
    assert [(r["attempt"], r["status"]) for r in rows] == [(2, "delivered")]


async def test_deliveries_of_a_deleted_subscription_are_dropped_unsent(
    hooks: WebhookStore,
) -> None:
    with receiver() as rx:
        sub = _subscribe(hooks, rx.url)
        hooks.emit("acme", "papers", WebhookEvent.JOB_COMPLETED, {"job_id": "j"})
        hooks.remove("acme", "papers", sub.id)
        async with _delivering(hooks, _settings()):
            await _wait_settled(hooks)
        assert rx.calls == []
    assert hooks.deliveries(sub.id, offset=0, limit=10) == ([], 0)  # no log left behind
