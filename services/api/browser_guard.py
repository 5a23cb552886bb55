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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request, Response

from core.settings import ApiSettings
from services.api.errors import error_response

__all__ = ["LOOPBACK_NAMES", "SameHostPolicy", "guard_browser", "open_mode_policy"]

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


async def guard_browser(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """The open-mode host check (403 in the one error body), then ``nosniff`` on the answer.

    Called by the API's request-id middleware, so a refusal carries the request id too.
    """
    deps = getattr(request.app.state, "deps", None)
    refusal = None
    if deps is not None and (policy := open_mode_policy(deps.api)) is not None:
        refusal = policy.refusal(request.headers.get("host"), request.headers.get("origin"))
    if refusal is not None:
        response: Response = error_response(request, 403, *refusal)
    else:
        response = await call_next(request)
    response.headers["x-content-type-options"] = "nosniff"
    return response


def _hostname(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).hostname
    except ValueError:  # an unclosed "[", say
        return None


def _shown(value: str | None) -> str:
    return "(none)" if value is None else repr(value[:100])
