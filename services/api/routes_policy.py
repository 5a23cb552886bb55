"""A collection's query policy and its users' relevance feedback.

``PUT /v1/collections/{c}/policy`` stores the policy ``sieve tune --apply`` chose (every
query of the collection then uses it; request fields still win), ``DELETE`` returns the
collection to the server's defaults. ``POST /v1/collections/{c}/feedback`` records one
judgment; ``GET`` lists them for ``sieve tune --feedback``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import UpstreamUnavailable
from core.query_policy import QueryPolicy
from indexing.feedback import FeedbackStore, Judgment
from services.api.deps import Deps, Tenant, in_thread

__all__ = ["FeedbackRequest", "FeedbackResponse", "PolicyResponse", "router"]

router = APIRouter(prefix="/v1/collections", tags=["policy"])


class PolicyResponse(BaseModel):
    """The collection's stored policy (None: the server's defaults)."""

    name: str
    policy: QueryPolicy | None


class FeedbackRequest(BaseModel):
    """One judgment: was ``document_id`` relevant to ``query``?"""

    model_config = ConfigDict(extra="forbid")

    query: Annotated[str, Field(min_length=1, max_length=8192)]
    document_id: Annotated[str, Field(min_length=1, max_length=512)]
    relevant: bool

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the query is blank")
        return value


class FeedbackResponse(BaseModel):
    """How many judgments the collection holds; after a GET, a page of them and the cursor
    of the next page (None: the last one)."""

    name: str
    count: int
    judgments: list[Judgment] = Field(default_factory=list)
    next_cursor: str | None = None


@router.get("/{name}/policy")
async def get_policy(name: str, deps: Deps, tenant: Tenant) -> PolicyResponse:
    """The collection's query policy."""
    rec = await in_thread(deps.state.get_collection, tenant, name)
    return PolicyResponse(name=name, policy=rec.policy)


@router.put("/{name}/policy")
async def put_policy(name: str, body: QueryPolicy, deps: Deps, tenant: Tenant) -> PolicyResponse:
    """Store a query policy on the collection; its queries use it from now on."""
    await in_thread(deps.state.patch_collection, tenant, name, policy=body)
    return PolicyResponse(name=name, policy=body)


@router.delete("/{name}/policy")
async def delete_policy(name: str, deps: Deps, tenant: Tenant) -> PolicyResponse:
    """Forget the collection's policy: its queries use the server's defaults again."""
    await in_thread(deps.state.patch_collection, tenant, name, policy=None)
    return PolicyResponse(name=name, policy=None)


def _feedback(deps: Deps) -> FeedbackStore:
    if deps.feedback is None:
        raise UpstreamUnavailable("this server keeps no feedback store", code="no_feedback")
    return deps.feedback


@router.post("/{name}/feedback", status_code=201)
async def post_feedback(
    name: str, body: FeedbackRequest, deps: Deps, tenant: Tenant
) -> FeedbackResponse:
    """Record that ``document_id`` was (or was not) relevant to ``query``."""
    await in_thread(deps.state.get_collection, tenant, name)
    judgment = Judgment(query=body.query, document_id=body.document_id, relevant=body.relevant)
    count = await in_thread(_feedback(deps).add, tenant, name, judgment)
    return FeedbackResponse(name=name, count=count)


@router.get("/{name}/feedback")
async def list_feedback(
    name: str,
    deps: Deps,
    tenant: Tenant,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> FeedbackResponse:
    """A page of the collection's judgments, least recently written first; pass
    ``next_cursor`` back as ``cursor`` for the next page."""
    await in_thread(deps.state.get_collection, tenant, name)
    page = await in_thread(_feedback(deps).page, tenant, name, cursor=cursor, limit=limit)
    return FeedbackResponse(
        name=name, count=page.total, judgments=page.judgments, next_cursor=page.next_cursor
    )
