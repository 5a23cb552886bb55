"""Final policies side by side on a real BEIR collection, against the cross-encoder over 50.

    .venv/bin/python -m bench.query --policies --api-url URL --collection C \
        --dataset /work/shared/datasets/scifact [--queries 40 --queries-concurrent 64]

Runs against a running API whose collection is already ingested (``sieve eval`` ingests).
Rows: ``baseline`` (today's stage: the cross-encoder over all 50 candidates, its own
order), ``default`` (no request overrides, no collection policy: the untuned default),
``hybrid`` (recall only), and ``tuned`` (the policy stored on the collection, when it has
one). Each row: one client, then 16, over SciFact's judged queries (the same queries for
every row); p50/p95 of client latency, queries/s, and nDCG@10 of the answers given. The
collection's stored policy is lifted for the other rows and put back at the end.
Run the API with ``SIEVE_RERANK_CACHE_SIZE=0``: rows share queries, and a cached score
would make a later row look free (the bench counts ``rerank.cached`` and warns).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.harness import markdown_table, pct
from services.cli.evaluation import evaluate_runs, load_beir, ranked_documents

__all__ = ["run_policies"]

ROWS: dict[str, dict[str, Any]] = {
    "baseline: cross-encoder over 50": {"top_k": 50, "rerank_depth": 50, "final": "rerank"},
    "default (untuned)": {},
    "hybrid recall only": {"rerank": False},
}


@dataclass
class _Run:
    ms: list[float] = field(default_factory=list)
    rankings: dict[str, list[str]] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    cached: int = 0
    errors: int = 0
    seconds: float = 0.0


def _one(client: httpx.Client, path: str, qid: str, text: str, body: dict[str, Any], run: _Run,
         lock: threading.Lock) -> None:  # fmt: skip
    start = time.perf_counter()
    try:
        resp = client.post(path, json={"query": text, "top_n": 10, **body})
        ok = resp.status_code == 200
    except httpx.HTTPError:
        ok = False
    ms = (time.perf_counter() - start) * 1000
    with lock:
        if not ok:
            run.errors += 1
            return
        out = resp.json()
        run.ms.append(ms)
        run.rankings[qid] = ranked_documents(out["results"], qid)
        status = out["rerank"]["status"]
        run.statuses[status] = run.statuses.get(status, 0) + 1
        run.cached += int(out["rerank"].get("cached") or 0)


def _phase(api_url: str, path: str, items: list[tuple[str, str]], body: dict[str, Any],
           clients: int, timeout: float) -> _Run:  # fmt: skip
    run, lock, next_i = _Run(), threading.Lock(), [0]

    def worker() -> None:
        with httpx.Client(base_url=api_url, timeout=timeout) as client:
            while True:
                with lock:
                    i = next_i[0]
                    next_i[0] += 1
                if i >= len(items):
                    return
                _one(client, path, *items[i], body, run, lock)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.seconds = time.perf_counter() - start
    return run


def run_policies(
    api_url: str,
    collection: str,
    dataset: Path,
    *,
    queries: int,
    queries_concurrent: int,
    clients: int,
    timeout: float,
) -> str:
    """Every row at 1 and ``clients`` clients; a markdown report with ratios to the baseline."""
    data = load_beir(dataset)
    judged = sorted(data.queries.items())
    one = judged[:queries]
    many = judged[queries : queries + queries_concurrent]
    path = f"/v1/collections/{collection}/query"
    with httpx.Client(base_url=api_url, timeout=timeout) as c:
        resp = c.get(f"/v1/collections/{collection}")
        resp.raise_for_status()
        stored = resp.json().get("policy")
        rows = dict(ROWS)
        if stored:
            c.delete(f"/v1/collections/{collection}/policy").raise_for_status()
    results: dict[str, tuple[_Run, _Run]] = {}
    try:
        for name, body in rows.items():
            print(f"[policies] {name} ...", flush=True)
            results[name] = (
                _phase(api_url, path, one, body, 1, timeout),
                _phase(api_url, path, many, body, clients, timeout),
            )
        if stored:
            with httpx.Client(base_url=api_url, timeout=timeout) as c:
                c.put(f"/v1/collections/{collection}/policy", json=stored).raise_for_status()
            print("[policies] tuned (the collection's stored policy) ...", flush=True)
            results["tuned (stored policy)"] = (
                _phase(api_url, path, one, {}, 1, timeout),
                _phase(api_url, path, many, {}, clients, timeout),
            )
    finally:
        if stored:
            with httpx.Client(base_url=api_url, timeout=timeout) as c:
                c.put(f"/v1/collections/{collection}/policy", json=stored)
    return _render(results, data.qrels, clients, len(one), len(many))


def _render(results: dict[str, tuple[_Run, _Run]], qrels: dict[str, dict[str, int]],
            clients: int, n_one: int, n_many: int) -> str:  # fmt: skip
    base_one, base_many = next(iter(results.values()))
    b50 = pct(base_one.ms, 50)
    bqps = len(base_many.ms) / base_many.seconds if base_many.seconds else 0.0
    header = [
        "policy", "1 client p50 ms", "p95", f"{clients} clients p50 ms", "p95", "q/s",
        "p50 vs baseline", "q/s vs baseline", "nDCG@10", "rerank status", "cached",
    ]  # fmt: skip
    rows = []
    notes = []
    for name, (r1, rn) in results.items():
        qps = len(rn.ms) / rn.seconds if rn.seconds else 0.0
        ranking = {**r1.rankings, **rn.rankings}
        sub = {q: qrels[q] for q in ranking}
        ndcg = evaluate_runs(sub, ranking)["ndcg@10"] if sub else 0.0
        statuses = dict(r1.statuses)
        for k, v in rn.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
        rows.append([
            name, f"{pct(r1.ms, 50):,.0f}", f"{pct(r1.ms, 95):,.0f}", f"{pct(rn.ms, 50):,.0f}",
            f"{pct(rn.ms, 95):,.0f}", f"{qps:.2f}", f"{pct(r1.ms, 50) / b50:.2f}x",
            f"{qps / bqps:.2f}x" if bqps else "—", f"{ndcg:.4f}",
            ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())), str(r1.cached + rn.cached),
        ])  # fmt: skip
        if r1.errors or rn.errors:
            notes.append(f"- {name}: {r1.errors + rn.errors} errors")
        if r1.cached + rn.cached:
            notes.append(f"- {name}: {r1.cached + rn.cached} scores came from the cache")
    head = (
        f"\n### Final policies, SciFact through the API ({n_one} queries at 1 client, "
        f"{n_many} others at {clients}; nDCG@10 over those {n_one + n_many} judged queries)\n"
    )
    return "\n".join([head, markdown_table(header, rows), "", *notes])
