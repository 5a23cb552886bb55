"""What a web page must not be able to do with the API, enforced for every route at once.

- Open mode (no API keys): any page the user visits could POST an upload to
  ``http://127.0.0.1:8000`` (the browser adds an ``Origin`` naming the page), or rebind its
  own DNS name to 127.0.0.1 and read the API as "same origin" (``Host`` still names the
  page's domain). So there a request is answered only when its ``Host`` and, if present,
  its ``Origin`` name a loopback address, ``localhost``, the bind host or one of
  ``SIEVE_API_ALLOWED_HOSTS``; anything else gets 403. Keyed mode is unchanged: a
  cross-site page holds no key.
- Every response says ``X-Content-Type-Options: nosniff``: an image, a JSON body or an
  error is never sniffed into HTML or script.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.settings import ApiSettings

__all__ = ["LOOPBACK_NAMES", "SameHostPolicy", "browser_refusal", "open_mode_policy"]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class SameHostPolicy:
    """The host names an open-mode API answers to (lower case, no port)."""

    names: frozenset[str]

    def allows(self, hostname: str | None) -> bool:
        """True for a loopback IP literal or one of ``names``."""
        if not hostname:
            return False
        name = hostname.lower().rstrip(".")
        if name in self.names:
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    def refusal(self, host: str | None, origin: str | None) -> tuple[str, str] | None:
        """``(code, message)`` when a request with these headers is refused, else None."""
        if not self.allows(_hostname("//" + host if host else None)):
            return (
                "host_not_allowed",
                "open mode answers only loopback hosts and SIEVE_API_ALLOWED_HOSTS; "
                f"Host {_shown(host)} is neither",
            )
        if origin is not None and not self.allows(_hostname(origin)):
            return (
                "cross_site_refused",
                f"open mode refuses cross-site requests: Origin {_shown(origin)} is not "
                "loopback or one of SIEVE_API_ALLOWED_HOSTS",
            )
        return None


def open_mode_policy(api: ApiSettings) -> SameHostPolicy | None:
    """Open mode's policy (loopback names, the bind host, the configured hosts); None if keyed."""
    if not api.open_mode:
        return None
    return SameHostPolicy(frozenset({*LOOPBACK_NAMES, api.host.lower(), *api.allowed_hosts}))


def browser_refusal(
    api: ApiSettings, host: str | None, origin: str | None
) -> tuple[str, str] | None:
    """The open-mode host check: ``(code, message)`` of the 403 for a request with these
    ``Host`` and ``Origin`` headers, or None. Called by the API's request-context middleware
    (services/api/request_context.py), which also adds ``nosniff`` to every answer."""
    policy = open_mode_policy(api)
    return None if policy is None else policy.refusal(host, origin)


def _hostname(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).hostname
    except ValueError:  # an unclosed "[", say
        return None


def _shown(value: str | None) -> str:
    return "(none)" if value is None else repr(value[:100])
