"""API keys → tenants. Keys are compared in constant time and never logged."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from pydantic import SecretStr

from core.errors import Unauthorized

__all__ = ["OPEN_TENANT", "TenantResolver", "remember_tenant", "remembered_tenant"]

OPEN_TENANT = "default"
# Where the request-context middleware leaves the tenant it resolved (in the ASGI scope's
# state), so the route's dependency does not compare the key against every tenant again.
_RESOLVED = "sieve.tenant"


class TenantResolver:
    """Resolve an ``Authorization: Bearer`` header to a tenant name."""

    def __init__(self, keys: dict[str, SecretStr]) -> None:
        self._keys = [(t, k.get_secret_value().encode()) for t, k in keys.items()]

    @property
    def open_mode(self) -> bool:
        """True when no keys are configured."""
        return not self._keys

    def resolve(self, authorization: str | None) -> str:
        """Return the caller's tenant, or raise ``Unauthorized``."""
        if self.open_mode:
            return OPEN_TENANT
        if not authorization:
            raise Unauthorized("missing Authorization: Bearer <api key>")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("expected Authorization: Bearer <api key>")
        given = token.strip().encode()
        match: str | None = None
        # Compare against every key, without an early exit, so timing says nothing.
        for tenant, key in self._keys:
            if hmac.compare_digest(given, key) and match is None:
                match = tenant
        if match is None:
            raise Unauthorized("invalid API key")
        return match


def remember_tenant(scope_state: dict[str, object], tenant: str) -> None:
    """Record the tenant this request's key resolved to."""
    scope_state[_RESOLVED] = tenant


def remembered_tenant(scope_state: Mapping[str, object]) -> str | None:
    """The tenant :func:`remember_tenant` recorded for this request, if any."""
    tenant = scope_state.get(_RESOLVED)
    return tenant if isinstance(tenant, str) else None
