"""How the untuned default final policy was chosen: a dev half, a test half, stress rerankers.

    .venv/bin/python -m bench.default_policy CANDIDATES.jsonl DATASET_DIR [--seed 13]

``CANDIDATES.jsonl`` is ``sieve tune --cache``'s file (each query's recall legs and rerank
scores, fetched once through the API). The judged queries are split in two seeded halves
(the split ``sieve tune --holdout 0.5`` makes); the conservative family (window policies,
and the fusion and cross-encoder orders for comparison) is scored on the dev half, the
choice is reported on the test half.

Robustness cannot be read off one corpus, so every policy is also scored with the
reranker replaced by two that are wrong on purpose: ``inverted`` (the cross-encoder's
scores negated: it prefers exactly what it should not, as the cross-encoder's own order
nearly did on the argument-retrieval collection, -0.33 there) and ``random``. A default
must not fall below hybrid recall on dev with the real reranker, and must lose little
with the wrong ones: that is the bound the window gives (a result moves at most w - 1
places, and the first w results are recall's own).
"""

from __future__ import annotations

import argparse
import random
from dataclasses import replace
from pathlib import Path

from bench.harness import markdown_table
from core.settings import QuerySettings, RerankSettings
from query import RankPlan, resolve_rank
from services.cli.evaluation import load_beir
from services.cli.tuning import QueryCandidates, load_candidates, score_candidates

TOP_K = 50


def _stressed(items: list[QueryCandidates], how: str, seed: int) -> list[QueryCandidates]:
    rng = random.Random(seed)
    out = []
    for q in items:
        if how == "inverted":
            rerank = {c: 1.0 - s for c, s in q.rerank.items()}
        else:
            rerank = {c: rng.random() for c in q.rerank}
        out.append(replace(q, rerank=rerank))
    return out


def _family(depths: tuple[int, ...]) -> list[RankPlan]:
    # Hybrid recall as the settings resolve it, no late interaction, no rerank.
    hybrid = replace(
        resolve_rank(None, QuerySettings(), RerankSettings()), late_weight=0.0, rerank_depth=0
    )
    out = [hybrid]
    for d in depths:
        out.append(replace(hybrid, rerank_depth=d, final="rerank"))
        out.extend(
            replace(hybrid, rerank_depth=d, final="fusion", recall_weight=rw, rerank_weight=1.0,
                    fusion_k=k)
            for rw in (1.0, 2.0, 3.0) for k in (2.0, 5.0)
        )  # fmt: skip
        out.extend(
            replace(hybrid, rerank_depth=d, final="window", window=w, recall_weight=rw,
                    rerank_weight=xw, fusion_k=2.0)
            for w in (2, 3, 5, 10) for rw, xw in ((2.0, 1.0), (1.0, 1.0), (1.0, 2.0))
        )  # fmt: skip
    return out


def main() -> None:
    """Score the family on dev, test and the stressed rerankers; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("candidates", type=Path)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--seed", type=int, default=13)
    # The cost target: the default's p50 at most 0.3x the cross-encoder over 50, which is
    # linear in pairs, so at most ~15 pairs; 10 leaves room for embed and recall.
    parser.add_argument("--max-depth", type=int, default=10)
    # The robustness bound: with a reranker that is wrong (inverted or random), lose at
    # most this much nDCG@10 against hybrid recall on dev.
    parser.add_argument("--max-loss", type=float, default=0.01)
    args = parser.parse_args()
    data = load_beir(args.dataset)
    items = [q for q in load_candidates(args.candidates) if q.qid in data.qrels]
    qids = sorted(q.qid for q in items)
    order = list(qids)
    random.Random(args.seed).shuffle(order)
    test, dev = sorted(order[: round(len(order) * 0.5)]), sorted(order[round(len(order) * 0.5) :])
    depth = max(q.rerank_pairs for q in items)
    family = _family(tuple(d for d in (10, 20, 50) if d <= depth))
    real = score_candidates(family, items, data.qrels, top_k=TOP_K)
    inv = score_candidates(family, _stressed(items, "inverted", args.seed), data.qrels, top_k=TOP_K)
    rnd = score_candidates(family, _stressed(items, "random", args.seed), data.qrels, top_k=TOP_K)
    hybrid = real[0]
    h_dev, h_test = hybrid.mean_ndcg(dev), hybrid.mean_ndcg(test)
    rows = []
    for r, i, n in zip(real, inv, rnd, strict=True):
        rows.append([
            r.candidate.label(), f"{r.mean_ndcg(dev):.4f}", f"{r.mean_ndcg(dev) - h_dev:+.4f}",
            f"{i.mean_ndcg(dev) - h_dev:+.4f}", f"{n.mean_ndcg(dev) - h_dev:+.4f}",
            f"{r.mean_ndcg(test):.4f}", f"{r.mean_ndcg(test) - h_test:+.4f}",
            f"{r.p50_ms:.0f}",
        ])  # fmt: skip
    # The rule: within the cost target's depth, on dev at least hybrid with the real
    # reranker, at most --max-loss below it with a wrong one; then the best dev score.
    eligible = [
        (r, i, n)
        for r, i, n in zip(real, inv, rnd, strict=True)
        if 0 < r.candidate.rerank_depth <= args.max_depth
        and r.mean_ndcg(dev) >= h_dev
        and min(i.mean_ndcg(dev), n.mean_ndcg(dev)) >= h_dev - args.max_loss
    ]
    print(
        f"{len(items)} judged queries: dev {len(dev)}, test {len(test)} (seed {args.seed}); "
        f"hybrid dev {h_dev:.4f}, test {h_test:.4f}\n"
    )
    header = ["policy", "dev nDCG@10", "dev vs hybrid", "inverted CE", "random CE",
              "test nDCG@10", "test vs hybrid", "p50 ms (model)"]  # fmt: skip
    print(markdown_table(header, rows))
    if eligible:
        best = max(
            eligible,
            key=lambda t: (round(t[0].mean_ndcg(dev), 4), -t[0].candidate.rerank_depth),
        )
        r, i, n = best
        print(
            f"\nchosen on dev: {r.candidate.label()}; dev {r.mean_ndcg(dev):.4f}, "
            f"held-out test {r.mean_ndcg(test):.4f} (hybrid {h_test:.4f}); stressed on dev: "
            f"inverted {i.mean_ndcg(dev) - h_dev:+.4f}, random {n.mean_ndcg(dev) - h_dev:+.4f}"
        )
    else:
        print("\nno policy met the rule on dev")


if __name__ == "__main__":
    main()
