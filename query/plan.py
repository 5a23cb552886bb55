"""One query's plan: every knob resolved and checked once (request, else policy, else settings).

A ``QuerySpec`` is what a caller asked (the API maps its request body onto it field by
field); ``resolve_plan`` applies the collection's stored policy and the server's settings
and refuses what cannot run. The ranking part of a plan, ``RankPlan``, is also what
``sieve tune`` compares and stores: the server and tune rank with the same object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from core.errors import InvalidInput
from core.query_policy import FinalPolicy, QueryPolicy
from core.settings import QuerySettings, RerankSettings
from core.types import ChunkFilter, FusionWeights, LateFusion, QueryMode
from indexing.records import CollectionRecord
from reranker import FusionParams, OnRerankError, ScorePolicy, resolve_min_score

__all__ = ["PlanDefaults", "QueryPlan", "QuerySpec", "RankPlan", "resolve_plan", "resolve_rank"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """What one query asks for; None means "the collection's policy, else the settings".

    Field names are the API's request fields (a test keeps the two in step).
    """

    query: str
    top_k: int | None = None
    top_n: int | None = None
    min_score: float | None = None
    filter: ChunkFilter | None = None
    mode: QueryMode = QueryMode.HYBRID
    rerank: bool = True
    rerank_model: str | None = None
    rerank_depth: int | None = None
    final: FinalPolicy | None = None
    on_rerank_error: str | None = None
    autocut: int | None = None
    late: bool = True
    late_weight: float | None = None
    late_recall_weight: float | None = None
    # Trace where documents went: the returned ones and these (naming some turns it on).
    explain: bool = False
    explain_documents: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class PlanDefaults:
    """The server's side of every knob: its query and rerank settings and default model."""

    query: QuerySettings
    rerank: RerankSettings
    rerank_model: str


@dataclass(frozen=True, slots=True)
class RankPlan:
    """How a query's candidates are ranked: recall fusion, late interaction, rerank, final order.

    Hashable, so ``sieve tune`` can key its grid by it; ``to_policy`` is what it stores.
    """

    dense_weight: float
    sparse_weight: float
    rrf_k: float
    late_weight: float
    late_recall_weight: float
    late_k: float
    rerank_depth: int
    final: FinalPolicy
    recall_weight: float
    rerank_weight: float
    fusion_k: float
    window: int
    autocut: int = 0

    @property
    def weights(self) -> FusionWeights:
        """The recall legs' RRF weights."""
        return FusionWeights(dense=self.dense_weight, sparse=self.sparse_weight)

    @property
    def late_fusion(self) -> LateFusion:
        """The late-interaction stage's weighted RRF of recall rank and MaxSim rank."""
        return LateFusion(recall=self.late_recall_weight, late=self.late_weight, k=self.late_k)

    @property
    def score_policy(self) -> ScorePolicy:
        """The final order's policy."""
        return ScorePolicy(self.final)

    @property
    def fusion(self) -> FusionParams:
        """The final fusion of recall and rerank ranks."""
        return FusionParams(
            recall_weight=self.recall_weight,
            rerank_weight=self.rerank_weight,
            k=self.fusion_k,
            window=self.window,
        )

    def label(self) -> str:
        """A short readable name for tables."""
        recall = f"rrf {self.dense_weight:g}:{self.sparse_weight:g} k{self.rrf_k:g}"
        if self.late_weight:
            recall += f" +late {self.late_weight:g}"
        if self.rerank_depth == 0:
            return f"{recall} | no rerank"
        final: str = self.final
        if self.final in ("fusion", "window"):
            final += f" {self.recall_weight:g}:{self.rerank_weight:g} k{self.fusion_k:g}"
        if self.final == "window":
            final += f" w{self.window}"
        return f"{recall} | rerank@{self.rerank_depth} {final}"

    def to_policy(self, provenance: dict[str, Any]) -> QueryPolicy:
        """The policy that resolves back to this plan, to store on the collection."""
        return QueryPolicy(
            dense_weight=self.dense_weight,
            sparse_weight=self.sparse_weight,
            rrf_k=self.rrf_k,
            late_weight=self.late_weight,
            rerank_depth=self.rerank_depth,
            final=self.final,
            fusion_recall_weight=self.recall_weight,
            fusion_rerank_weight=self.rerank_weight,
            fusion_k=self.fusion_k,
            window=self.window,
            autocut=self.autocut,
            provenance=provenance,
        )


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """Everything one query does, resolved: sizes, the ranking, the rerank call, the cutoff."""

    spec: QuerySpec
    top_k: int
    top_n: int
    rank: RankPlan
    reranking: bool
    rerank_model: str
    check_model: bool
    min_score: float | None
    on_error: OnRerankError
    skip_reason: str
    use_late: bool
    late_model: str | None
    late_dimension: int | None


def _pick(*values: T | None) -> T:
    for value in values:
        if value is not None:
            return value
    raise AssertionError("the settings' default is never None")


def resolve_rank(
    policy: QueryPolicy | None,
    query: QuerySettings,
    rerank: RerankSettings,
    spec: QuerySpec | None = None,
    *,
    top_k: int | None = None,
) -> RankPlan:
    """The ranking knobs (precedence: ``spec``, then ``policy``, then the settings).

    ``top_k`` caps the rerank depth (a depth past the candidates means all of them).
    """
    p = policy or QueryPolicy()
    s = spec or QuerySpec(query="-")
    depth = _pick(s.rerank_depth, p.rerank_depth, rerank.depth)
    return RankPlan(
        dense_weight=_pick(p.dense_weight, query.dense_weight),
        sparse_weight=_pick(p.sparse_weight, query.sparse_weight),
        rrf_k=_pick(p.rrf_k, query.rrf_k),
        late_weight=_pick(s.late_weight, p.late_weight, query.late_weight),
        late_recall_weight=_pick(s.late_recall_weight, query.late_recall_weight),
        late_k=query.late_rrf_k,
        rerank_depth=depth if top_k is None else min(depth, top_k),
        final=_pick(s.final, p.final, rerank.final),
        recall_weight=_pick(p.fusion_recall_weight, rerank.fusion_recall_weight),
        rerank_weight=_pick(p.fusion_rerank_weight, rerank.fusion_rerank_weight),
        fusion_k=_pick(p.fusion_k, rerank.fusion_k),
        window=_pick(p.window, rerank.window),
        autocut=_pick(s.autocut, p.autocut, rerank.autocut or 0),
    )


def resolve_plan(
    spec: QuerySpec, collections: list[CollectionRecord], defaults: PlanDefaults
) -> QueryPlan:
    """Resolve every knob of ``spec`` over ``collections`` (the first one's policy applies).

    Raises:
        InvalidInput: collections of different embedding models, ``top_n`` above ``top_k``,
            ``top_k`` over the limit, or a ``rerank_depth`` above ``top_k``.
    """
    first = collections[0]
    for other in collections[1:]:
        if (other.embedding_model, other.dimension) != (first.embedding_model, first.dimension):
            raise InvalidInput(
                f"collections {first.name!r} and {other.name!r} use different embedding "
                "models; query them separately",
                code="mixed_embedding_models",
            )
    query, rerank = defaults.query, defaults.rerank
    top_k = spec.top_k or query.top_k
    top_n = spec.top_n or min(query.top_n, top_k)
    if top_n > top_k:
        raise InvalidInput(f"top_n ({top_n}) must not exceed top_k ({top_k})")
    if top_k > query.max_top_k:
        raise InvalidInput(f"top_k ({top_k}) is over the limit of {query.max_top_k}")
    if spec.rerank_depth is not None and spec.rerank_depth > top_k:
        raise InvalidInput(f"rerank_depth ({spec.rerank_depth}) must not exceed top_k ({top_k})")
    rank = resolve_rank(first.policy, query, rerank, spec, top_k=top_k)
    rerank_model = spec.rerank_model or first.rerank_model or defaults.rerank_model
    # Token vectors only when every collection has the same late-interaction model:
    # late-fused scores do not compare with plain recall scores across collections.
    late_models = {(c.late_model, c.late_dimension) for c in collections}
    late_model, late_dimension = next(iter(late_models))
    return QueryPlan(
        spec=spec,
        top_k=top_k,
        top_n=top_n,
        rank=rank,
        reranking=spec.rerank and rerank.enabled and rank.rerank_depth > 0,
        rerank_model=rerank_model,
        check_model=spec.rerank_model is not None,
        min_score=resolve_min_score(
            spec.min_score,
            first.min_score,
            rerank.model_min_scores.get(rerank_model, rerank.min_score),
        ),
        on_error=OnRerankError(spec.on_rerank_error or rerank.on_error),
        skip_reason=_skip_reason(spec.rerank, rerank.enabled),
        use_late=spec.late and late_model is not None and len(late_models) == 1,
        late_model=late_model,
        late_dimension=late_dimension,
    )


def _skip_reason(requested: bool, enabled: bool) -> str:
    if not requested:
        return "reranking is off"
    return "rerank_depth is 0" if enabled else "reranking is disabled"
