"""A collection's webhook subscriptions and their delivery logs (README, "Webhooks").

``POST /v1/collections/{c}/webhooks`` subscribes a URL to some events and answers the
signing secret, once; ``GET`` lists the subscriptions (no secrets), ``DELETE .../{id}``
removes one, ``GET .../{id}/deliveries`` pages its delivery attempts, newest first.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidInput, UpstreamUnavailable
from indexing.webhooks import Subscription, WebhookEvent, WebhookStore, new_secret
from services.api.deps import Deps, Tenant, in_thread
from services.api.webhook_targets import MAX_URL_CHARS, resolve_target

__all__ = [
    "WebhookCreateRequest",
    "WebhookCreatedResponse",
    "WebhookDeliveriesResponse",
    "WebhookResponse",
    "WebhooksResponse",
    "router",
]

router = APIRouter(prefix="/v1/collections", tags=["webhooks"])

_MAX_PAGE = 200


class WebhookCreateRequest(BaseModel):
    """Where to send events, and which ones (default: every event)."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=1, max_length=MAX_URL_CHARS)]
    events: Annotated[list[WebhookEvent], Field(min_length=1, max_length=len(WebhookEvent))] = (
        Field(default_factory=lambda: list(WebhookEvent))
    )
    description: Annotated[str, Field(max_length=256)] = ""


class WebhookResponse(BaseModel):
    """A subscription as listed (never its secret)."""

    id: str
    collection: str
    url: str
    events: list[WebhookEvent]
    description: str
    created_at: float


class WebhookCreatedResponse(WebhookResponse):
    """A new subscription with its signing secret: shown this once, keep it."""

    secret: str


class WebhooksResponse(BaseModel):
    """A collection's subscriptions."""

    webhooks: list[WebhookResponse]


class WebhookDeliveriesResponse(BaseModel):
    """A page of a subscription's delivery attempts (newest first) and how many are kept."""

    deliveries: list[dict[str, Any]]
    total: int
    offset: int


def _view(sub: Subscription) -> WebhookResponse:
    return WebhookResponse.model_validate(sub.model_dump(exclude={"secret", "tenant"}))


def _store(deps: Deps) -> WebhookStore:
    if deps.webhooks is None:
        raise UpstreamUnavailable("webhooks are not configured in this process")
    return deps.webhooks


@router.post("/{name}/webhooks", status_code=201)
async def create_webhook(
    name: str, body: WebhookCreateRequest, deps: Deps, tenant: Tenant
) -> WebhookCreatedResponse:
    """Subscribe ``url`` to the collection's events; the answer holds the secret, once.

    The URL must pass the SSRF guard now (and does again before every delivery).
    """
    store = _store(deps)
    await in_thread(deps.state.get_collection, tenant, name)
    try:
        await resolve_target(deps.webhook_policy, body.url)
    except UpstreamUnavailable as exc:
        raise InvalidInput(
            "webhook url's host does not resolve", code="webhook_target_unresolved", field="url"
        ) from exc
    sub = Subscription(
        id=store.new_id(),
        tenant=tenant,
        collection=name,
        url=body.url,
        events=list(dict.fromkeys(body.events)),
        description=body.description,
        secret=new_secret(),
    )
    await in_thread(store.add, sub)
    return WebhookCreatedResponse.model_validate(sub.model_dump(exclude={"tenant"}))


@router.get("/{name}/webhooks")
async def list_webhooks(name: str, deps: Deps, tenant: Tenant) -> WebhooksResponse:
    """The collection's subscriptions, oldest first."""
    store = _store(deps)
    await in_thread(deps.state.get_collection, tenant, name)
    subs = await in_thread(store.subscriptions, tenant, name)
    return WebhooksResponse(webhooks=[_view(s) for s in subs])


@router.delete("/{name}/webhooks/{webhook_id}", status_code=204)
async def delete_webhook(name: str, webhook_id: str, deps: Deps, tenant: Tenant) -> Response:
    """Remove a subscription and its log; deliveries still queued for it are dropped."""
    store = _store(deps)
    await in_thread(deps.state.get_collection, tenant, name)
    await in_thread(store.remove, tenant, name, webhook_id)
    return Response(status_code=204)


@router.get("/{name}/webhooks/{webhook_id}/deliveries")
async def list_deliveries(
    name: str,
    webhook_id: str,
    deps: Deps,
    tenant: Tenant,
    *,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=_MAX_PAGE)] = 50,
) -> WebhookDeliveriesResponse:
    """A page of the subscription's delivery attempts, newest first (bounded by
    ``SIEVE_WEBHOOK_LOG_MAX``, expiring after ``SIEVE_WEBHOOK_LOG_TTL_S``)."""
    store = _store(deps)
    await in_thread(deps.state.get_collection, tenant, name)
    await in_thread(store.get, tenant, name, webhook_id)
    rows, total = await in_thread(store.deliveries, webhook_id, offset=offset, limit=limit)
    return WebhookDeliveriesResponse(deliveries=rows, total=total, offset=offset)
