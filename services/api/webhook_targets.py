"""The SSRF guard of webhook targets: which URLs Sieve may send events to.

A target must be ``http(s)://host[:port]/...`` without credentials. Its host name is
resolved and every address it resolves to must be global (not private, loopback,
link-local, shared, reserved, multicast, ...) unless it lies in one of
``SIEVE_WEBHOOK_ALLOW_NETWORKS``; with ``SIEVE_WEBHOOK_ALLOW_HOSTS`` set, the host name must
also be one of them. The check runs when a subscription is created and again before every
delivery, and the delivery connects to the very address that was checked (DNS rebinding
cannot switch it). Redirects are not followed: a 3xx answer is a failed attempt.

Errors never name the address a host resolved to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from core.errors import InvalidInput, UpstreamUnavailable
from core.settings import WebhookSettings

__all__ = [
    "MAX_URL_CHARS",
    "PinnedTarget",
    "TargetPolicy",
    "TargetRefused",
    "check_url",
    "resolve_target",
    "system_resolver",
]

MAX_URL_CHARS = 2048

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses it resolves to; loop.getaddrinfo in production.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class TargetRefused(InvalidInput):
    """A webhook target the guard does not allow."""

    code = "webhook_target_refused"


@dataclass(frozen=True)
class TargetPolicy:
    """Which hosts and addresses webhook targets may have (``WebhookSettings``)."""

    allow_networks: tuple[IpNetwork, ...] = ()
    allow_hosts: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: WebhookSettings) -> TargetPolicy:
        """The policy the settings name."""
        return cls(
            allow_networks=tuple(
                ipaddress.ip_network(n, strict=False) for n in settings.allow_networks
            ),
            allow_hosts=tuple(h.lower().rstrip(".") for h in settings.allow_hosts),
        )

    def host_allowed(self, host: str) -> bool:
        """True without a host allowlist, or when ``host`` is on it (``*.suffix`` matches below)."""
        if not self.allow_hosts:
            return True
        name = host.lower().rstrip(".")
        for allowed in self.allow_hosts:
            if allowed.startswith("*."):
                if name.endswith(allowed[1:]):
                    return True
            elif name == allowed:
                return True
        return False

    def address_allowed(self, address: IpAddress) -> bool:
        """A global unicast address, or one inside an allowed network."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
        if any(address in net for net in self.allow_networks):
            return True
        return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class PinnedTarget:
    """A checked target: the request goes to ``address``, named ``host`` (Host, SNI)."""

    url: httpx.URL
    host: str
    address: str

    def request_url(self) -> httpx.URL:
        """The URL with its host replaced by the checked address."""
        return self.url.copy_with(host=self.address)

    def host_header(self) -> str:
        """The Host header the target expects."""
        default = {"http": 80, "https": 443}[self.url.scheme]
        port = self.url.port
        return self.host if port in (None, default) else f"{self.host}:{port}"


def check_url(raw: str) -> httpx.URL:
    """The URL's form: http(s), a host, no credentials, at most ``MAX_URL_CHARS``.

    Raises:
        InvalidInput: the URL is malformed (``webhook_url_invalid``).
    """

    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"webhook url {why}", code="webhook_url_invalid", field="url")

    if len(raw) > MAX_URL_CHARS:
        raise bad(f"is longer than {MAX_URL_CHARS} characters")
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, ValueError) as exc:
        raise bad("is not a URL") from exc
    if url.scheme not in ("http", "https"):
        raise bad("must start with http:// or https://")
    if not url.host:
        raise bad("has no host")
    if url.userinfo:
        raise bad("must not carry credentials (put a token in the path or query instead)")
    return url


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the event loop's getaddrinfo)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve_target(
    policy: TargetPolicy, raw: str, *, resolver: Resolver = system_resolver
) -> PinnedTarget:
    """Check ``raw`` and pin it to one checked address.

    Every address the host resolves to must be allowed (one refused address refuses the
    host: which of them a client library would pick is not ours to guess).

    Raises:
        InvalidInput: malformed URL.
        TargetRefused: the host or one of its addresses is not allowed.
        UpstreamUnavailable: the host does not resolve now (``webhook_target_unresolved``).
    """
    url = check_url(raw)
    host = url.raw_host.decode("ascii")
    if not policy.host_allowed(host):
        raise TargetRefused(
            "webhook host is not in SIEVE_WEBHOOK_ALLOW_HOSTS", code="webhook_target_refused"
        )
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        literal: IpAddress | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = list(await resolver(host, port))
        except (OSError, UnicodeError) as exc:
            raise UpstreamUnavailable(
                "webhook host does not resolve", code="webhook_target_unresolved"
            ) from exc
    if not addresses:
        raise UpstreamUnavailable("webhook host does not resolve", code="webhook_target_unresolved")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not policy.address_allowed(ip):
            raise TargetRefused(
                "webhook host resolves to a private, loopback, link-local or otherwise "
                "non-public address (allow it with SIEVE_WEBHOOK_ALLOW_NETWORKS)",
                code="webhook_target_refused",
            )
    return PinnedTarget(url=url, host=host, address=addresses[0].split("%", 1)[0])
