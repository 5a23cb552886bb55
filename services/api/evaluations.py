"""The last ``sieve eval`` report of each collection, kept in Redis beside its records.

The CLI runs the evaluation against the API and stores its report here over HTTP, so the
console can show it in every mode (the CLI and the API need not share a disk).
"""

from __future__ import annotations

import time

import redis

from core.errors import NotFound
from indexing.state_store import redis_errors
from services.api.schemas import EvaluationReport

__all__ = ["EvaluationStore"]


def _key(tenant: str, collection: str) -> str:
    return f"sieve:eval:{tenant}:{collection}"


class EvaluationStore:
    """One report per (tenant, collection); a new report replaces the old one."""

    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    def put(self, tenant: str, collection: str, report: EvaluationReport) -> EvaluationReport:
        """Store ``report`` (stamped with the time it was saved) and return it."""
        stamped = report.model_copy(update={"saved_at": time.time()})
        with redis_errors():
            self._r.set(_key(tenant, collection), stamped.model_dump_json())
        return stamped

    def get(self, tenant: str, collection: str) -> EvaluationReport:
        """The stored report; ``NotFound`` when ``sieve eval`` never saved one."""
        with redis_errors():
            raw = self._r.get(_key(tenant, collection))
        if raw is None:
            raise NotFound(
                f"no evaluation report for {collection!r}: "
                f"run `sieve eval DATASET -c {collection}`",
                code="evaluation_not_found",
            )
        return EvaluationReport.model_validate_json(raw)

    def delete(self, tenant: str, collection: str) -> None:
        """Forget the collection's report (with the collection)."""
        with redis_errors():
            self._r.delete(_key(tenant, collection))
