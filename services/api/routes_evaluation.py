"""``/v1/collections/{name}/evaluation``: the last ``sieve eval`` report (stored, read)."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.deps import Deps, Tenant, in_thread
from services.api.evaluations import EvaluationStore
from services.api.schemas import EvaluationReport

__all__ = ["router"]

router = APIRouter(prefix="/v1/collections/{name}/evaluation", tags=["evaluation"])


def _store(deps: Deps) -> EvaluationStore:
    return EvaluationStore(deps.state.raw())


@router.put("")
async def put_evaluation(
    name: str, body: EvaluationReport, deps: Deps, tenant: Tenant
) -> EvaluationReport:
    """Store ``sieve eval``'s report for the collection (replacing the previous one)."""
    await in_thread(deps.state.get_collection, tenant, name)
    return await in_thread(_store(deps).put, tenant, name, body)


@router.get("")
async def get_evaluation(name: str, deps: Deps, tenant: Tenant) -> EvaluationReport:
    """The collection's last evaluation report (404 ``evaluation_not_found`` if none)."""
    await in_thread(deps.state.get_collection, tenant, name)
    return await in_thread(_store(deps).get, tenant, name)
