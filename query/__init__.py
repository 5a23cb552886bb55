"""The read side: a query's plan, its one ranking, and the engine that runs it.

``plan`` resolves every knob once (request, else the collection's policy, else settings);
``rank`` is the one ranking (legs → late interaction → rerank policy → cutoff/autocut) that
the server and ``sieve tune`` share; ``engine`` runs plan / recall / rerank / decide over
ports and returns a domain result; ``catalog`` holds the hub's models and rerank clients.
No web framework and no task queue here: the API maps its schemas onto these types.
"""

from query.catalog import ModelsCatalog, RerankerPool
from query.engine import (
    DeletedLookup,
    ImageSource,
    QueryEngine,
    QueryResult,
    RankedHit,
    rerank_documents,
    rerank_text,
)
from query.plan import PlanDefaults, QueryPlan, QuerySpec, RankPlan, resolve_plan, resolve_rank
from query.rank import Legs, decide, decide_query, rank

__all__ = [
    "DeletedLookup",
    "ImageSource",
    "Legs",
    "ModelsCatalog",
    "PlanDefaults",
    "QueryEngine",
    "QueryPlan",
    "QueryResult",
    "QuerySpec",
    "RankPlan",
    "RankedHit",
    "RerankerPool",
    "decide",
    "decide_query",
    "rank",
    "rerank_documents",
    "rerank_text",
    "resolve_plan",
    "resolve_rank",
]
