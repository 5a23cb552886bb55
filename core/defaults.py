"""Measured defaults that a library constructor and a settings class must agree on.

One home, so that ``reranker``'s defaults and ``RerankSettings``'s cannot drift apart.
Chosen on a dev half of SciFact's judged queries (README, "Evaluation").
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "BULK_PRIORITY",
    "DEFAULT_FUSION_K",
    "DEFAULT_JOB_RETENTION_S",
    "DEFAULT_POLICY_NAME",
    "DEFAULT_RECALL_WEIGHT",
    "DEFAULT_RERANK_DEPTH",
    "DEFAULT_RERANK_WEIGHT",
    "DEFAULT_WINDOW",
    "PRIORITY_HEADER",
]

DEFAULT_POLICY_NAME: Final[Literal["rerank", "fusion", "window"]] = "window"
DEFAULT_RECALL_WEIGHT = 2.0
DEFAULT_RERANK_WEIGHT = 1.0
DEFAULT_FUSION_K = 2.0
# Untuned, the reranker may not move a result (a window of one rank): on a corpus with one
# relevant passage a query, every wrong move of recall's first result costs ~0.37 nDCG@10,
# so no window wide enough to help a good reranker keeps a wrong one within 0.005 of recall
# (a window of 5 lost 0.015 on an argument-retrieval collection). The reranker's scores
# still serve the cutoff and the answer; ``sieve tune`` widens the window when held-out
# evidence (judgments, feedback, a judge model) says the collection's reranker pays.
DEFAULT_WINDOW = 1
DEFAULT_RERANK_DEPTH = 10
# Finished jobs are kept this long (``RetentionSettings.jobs_s`` and ``StateStore``).
DEFAULT_JOB_RETENTION_S = 7 * 24 * 3600.0

# The header a bulk caller of the model hub sends (Sieve's ingest worker and re-indexer):
# the local hub batches interactive requests (queries, reranks) ahead of it and keeps an
# inference thread for them (services/modelhub/batcher.py). Other hubs ignore it.
PRIORITY_HEADER: Final = "x-sieve-priority"
BULK_PRIORITY: Final = "batch"
