"""Re-index benchmark: what a re-index costs against re-uploading, and that queries go on.

    .venv/bin/python -m bench.reindex [--docs 1000] [--json]

One embedded stack (``sieve up``'s supervisor), the first ``--docs`` SciFact abstracts:

1. ingest them into a plain collection (dense + BM25), and into a second one created with
   late interaction: the second is what re-uploading would cost to add the stage;
2. re-index the plain collection to add late interaction (``POST …/reindex``), while one
   client queries it without pause; then re-index it again to take the stage off.

Reported: chunks/s of each, the re-index against the late ingest it replaces (a ratio in the
same run), and the queries answered during each re-index (status and p50/p95), against the
same client's queries before it.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.harness import BenchStack, code_state, markdown_table, pct
from bench.ingest import Corpus, ingest, load_corpus, wait_jobs

PLAIN, LATE = "rx", "late"
QUERIES = (
    "how do cells repair damaged DNA",
    "vitamin D deficiency and bone fractures",
    "antibiotic resistance in hospital bacteria",
    "effect of exercise on insulin sensitivity",
)
QUERY_S = 20.0  # the before-window of queries


@dataclass
class QueryLoop:
    """One client querying a collection without pause until stopped, in a thread."""

    api_url: str
    collection: str
    statuses: dict[int, int] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> QueryLoop:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(base_url=self.api_url, timeout=120) as api:
            n = 0
            while not self._stop.is_set():
                body = {"query": QUERIES[n % len(QUERIES)], "rerank": False, "top_n": 10}
                n += 1
                start = time.perf_counter()
                try:
                    code = api.post(f"/v1/collections/{self.collection}/query", json=body)
                    status = code.status_code
                except httpx.TransportError:
                    status = 0
                self.latency_ms.append((time.perf_counter() - start) * 1000)
                self.statuses[status] = self.statuses.get(status, 0) + 1

    def summary(self) -> dict[str, Any]:
        """Statuses and p50/p95 of what the loop saw."""
        return {
            "statuses": dict(sorted(self.statuses.items())),
            "p50": pct(self.latency_ms, 50),
            "p95": pct(self.latency_ms, 95),
        }


def reindex(stack: BenchStack, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Re-index ``PLAIN`` with ``body`` under a query loop; its time, job and the queries."""
    with (
        httpx.Client(base_url=stack.api_url, timeout=120) as api,
        QueryLoop(stack.api_url, PLAIN) as loop,
    ):
        start = time.perf_counter()
        resp = api.post(f"/v1/collections/{PLAIN}/reindex", json=body)
        resp.raise_for_status()
        job_id = resp.json()["id"]
        wait_jobs(api, [job_id], stack, timeout_s)
        seconds = time.perf_counter() - start
        job = api.get(f"/v1/jobs/{job_id}").raise_for_status().json()
    if job["state"] != "completed":
        raise SystemExit(f"re-index {job_id} ended {job['state']}: {job}")
    return {"seconds": seconds, "job": job, "queries": loop.summary()}


def before_queries(stack: BenchStack) -> dict[str, Any]:
    """The same query loop for ``QUERY_S`` with nothing else running: the baseline."""
    with QueryLoop(stack.api_url, PLAIN) as loop:
        time.sleep(QUERY_S)
    return loop.summary()


def run(docs: int, timeout_s: float) -> dict[str, Any]:
    """Ingest plain and late, then re-index plain → late → plain under queries."""
    code = code_state()
    corpus: Corpus = load_corpus(docs)
    print(f"{len(corpus.lines):,} documents -> {corpus.chunks:,} chunks")
    with BenchStack.running("reindex") as stack:
        print("ingest, plain ...", flush=True)
        plain = ingest(stack, corpus, timeout_s, collection=PLAIN)
        print("ingest, late interaction ...", flush=True)
        late = ingest(stack, corpus, timeout_s, collection=LATE, late=True)
        print("queries, no re-index ...", flush=True)
        quiet = before_queries(stack)
        print("re-index: add late interaction ...", flush=True)
        add = reindex(stack, {"late_interaction": True}, timeout_s)
        print("re-index: remove late interaction ...", flush=True)
        remove = reindex(stack, {"late_interaction": False}, timeout_s)
        with httpx.Client(base_url=stack.api_url, timeout=60) as api:
            view = api.get(f"/v1/collections/{PLAIN}").raise_for_status().json()
    chunks = corpus.chunks
    return {
        "documents": len(corpus.lines),
        "chunks": chunks,
        "ingest_plain_s": plain.seconds,
        "ingest_late_s": late.seconds,
        "add_late": add,
        "remove_late": remove,
        "quiet_queries": quiet,
        "final_view": {
            k: view.get(k) for k in ("embedding_model", "late_interaction", "chunks", "documents")
        },
        "code": code,
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }


def render(r: dict[str, Any]) -> str:
    """The markdown report."""
    chunks = r["chunks"]
    late_rate = chunks / r["ingest_late_s"]

    def rate_row(name: str, seconds: float, against: float | None) -> list[str]:
        ratio = "" if against is None else f"{(chunks / seconds) / against:.2f}x"
        return [name, f"{seconds:.1f}", f"{chunks / seconds:.1f}", ratio]

    def query_row(name: str, q: dict[str, Any]) -> list[str]:
        statuses = ", ".join(
            f"{n} x {code or 'transport error'}" for code, n in q["statuses"].items()
        )
        return [name, statuses, f"{q['p50']:.0f} / {q['p95']:.0f}"]

    return "\n".join(
        [
            f"\n### Re-index: first {r['documents']:,} SciFact abstracts ({chunks:,} chunks; "
            f"{r['cpus']} CPUs, load average {r['load_average']:.1f} at the end)\n",
            markdown_table(
                ["run", "wall s", "chunks/s", "vs late ingest"],
                [
                    rate_row("ingest, plain", r["ingest_plain_s"], late_rate),
                    rate_row("ingest, late interaction (re-upload)", r["ingest_late_s"], None),
                    rate_row("re-index: add late interaction", r["add_late"]["seconds"], late_rate),
                    rate_row(
                        "re-index: remove late interaction", r["remove_late"]["seconds"], late_rate
                    ),
                ],
            ),
            "\n",
            markdown_table(
                ["queries (one client, rerank off)", "statuses", "ms p50 / p95"],
                [
                    query_row("no re-index", r["quiet_queries"]),
                    query_row("during: add late interaction", r["add_late"]["queries"]),
                    query_row("during: remove late interaction", r["remove_late"]["queries"]),
                ],
            ),
            f"\nfinal collection: {r['final_view']}",
            f"code: {r['code']}",
        ]
    )


def main() -> None:
    """Run and print the report (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", type=int, default=1000, help="first N SciFact abstracts")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per stage")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    result = run(args.docs, args.timeout)
    print(json.dumps(result, indent=2) if args.json else render(result))


if __name__ == "__main__":
    main()
