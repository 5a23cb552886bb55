"""What the model hub's interactive reserve costs ingest, and what it buys the queries.

    .venv/bin/python -m bench.hub_reserve [--seconds 20] [--docs 100] [--json]

While interactive requests come in, the hub keeps ``SIEVE_MODELHUB_RESERVED_INTERACTIVE_THREADS``
(1) of its inference threads from bulk work (services/modelhub/README.md). One embedded
stack per setting (1, the default, and 0: no reserve), each with tenant B's collection of
``--docs`` SciFact abstracts, then a short warm-up of A's ingest and four windows of
``--seconds``: A indexing alone (the "ingest" part of ``bench/isolation.py``: 25 new SciFact
records per upload, each waiting for its job), A indexing while B's two clients query and
list, A alone again (the two alone windows are A's baseline), and B alone.

Reported per setting: A's ingest rate (documents per second of its uploads' time; A's one
client uploads one batch after another) alone and with B's queries, and B's query p50/p99
with A's ingest against B alone. Both settings run in this one process, one after the
other, so the machine's drift falls on both (run it twice to see the spread).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench.harness import BenchStack, code_state, machine_note, markdown_table, pct
from bench.ingest import load_corpus, wait_jobs
from bench.isolation import (
    INGEST_BATCH,
    KEY_A,
    KEY_B,
    Samples,
    a_process,
    b_window,
    client,
    setup_a,
)

_RESERVE_ENV = "SIEVE_MODELHUB_RESERVED_INTERACTIVE_THREADS"
_BATCH = "ingest batch (waits)"
_WARM_UP_S = 8.0  # the first batches load the models' sessions and open A's shard


def _docs_per_s(latency_ms: dict[str, list[float]]) -> float:
    """A's rate: its one client's batches back to back, so documents over their time."""
    times = latency_ms.get(_BATCH, [])
    return INGEST_BATCH * len(times) / (sum(times) / 1000) if times else 0.0


def _a_ingest(stack: BenchStack, seconds: float, *, with_b: bool) -> tuple[float, Samples | None]:
    """A's ingest for ``seconds`` (and B's clients beside it): (A's docs/s, B's samples)."""
    b = None
    with a_process(stack.api_url, 1, ("ingest",)) as a:
        if with_b:
            b = b_window(stack, seconds)
        else:
            time.sleep(seconds)
    return _docs_per_s(a.samples.latency_ms), b


def run_setting(reserve: int, seconds: float, docs: int) -> dict[str, Any]:
    """One stack with the reserve at ``reserve``: the three windows."""
    corpus = load_corpus(docs)
    keys = json.dumps({"team-a": KEY_A, "team-b": KEY_B})
    env = {"SIEVE_API_KEYS": keys, _RESERVE_ENV: str(reserve)}
    with BenchStack.running("hub-reserve", **env) as stack:
        with client(stack.api_url, KEY_B) as b:
            b.post("/v1/collections", json={"name": "b"}).raise_for_status()
            headers = {"content-type": "application/x-ndjson"}
            job = b.post(
                "/v1/collections/b/documents", content=b"\n".join(corpus.lines), headers=headers
            )
            wait_jobs(b, [job.raise_for_status().json()["job_id"]], stack, 900)
        setup_a(stack, 600, 900)
        print(f"reserve {reserve}: warm-up (A indexing, not counted) ...", flush=True)
        _a_ingest(stack, _WARM_UP_S, with_b=False)
        print(f"reserve {reserve}: A indexing alone, {seconds:.0f} s ...", flush=True)
        first, _ = _a_ingest(stack, seconds, with_b=False)
        print(f"reserve {reserve}: A indexing while B queries, {seconds:.0f} s ...", flush=True)
        a_with_b, b_loaded = _a_ingest(stack, seconds, with_b=True)
        print(f"reserve {reserve}: A indexing alone again, {seconds:.0f} s ...", flush=True)
        second, _ = _a_ingest(stack, seconds, with_b=False)
        print(f"reserve {reserve}: B alone, {seconds:.0f} s ...", flush=True)
        b_alone = b_window(stack, seconds)
        a_alone = (first + second) / 2
    assert b_loaded is not None
    q_alone, q_loaded = b_alone.latency_ms["query"], b_loaded.latency_ms["query"]
    return {
        "reserve": reserve,
        "a_docs_per_s_alone": a_alone,
        "a_docs_per_s_with_b": a_with_b,
        "b_query_alone": [pct(q_alone, 50), pct(q_alone, 99)],
        "b_query_with_a": [pct(q_loaded, 50), pct(q_loaded, 99)],
    }


def main(argv: list[str] | None = None) -> int:
    """Run both settings and print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each window")
    parser.add_argument("--docs", type=int, default=100, help="SciFact abstracts in B's collection")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    code = code_state()
    rows = [run_setting(reserve, args.seconds, args.docs) for reserve in (1, 0)]
    if args.json:
        print(json.dumps({"code": code, "machine": machine_note(), "rows": rows}, indent=2))
        return 0
    print(f"\n{machine_note()}; {code}; {args.docs} docs, {args.seconds:.0f} s windows\n")
    header = ["reserve", "A docs/s alone", "A docs/s with B", "ratio"]
    header += ["B query p50 / p99 alone", "with A", "ratio p50 / p99"]
    table = []
    for r in rows:
        (a50, a99), (l50, l99) = r["b_query_alone"], r["b_query_with_a"]
        table.append(
            [
                str(r["reserve"]),
                f"{r['a_docs_per_s_alone']:.1f}",
                f"{r['a_docs_per_s_with_b']:.1f}",
                f"{r['a_docs_per_s_with_b'] / max(r['a_docs_per_s_alone'], 1e-9):.2f}",
                f"{a50:.1f} / {a99:.1f}",
                f"{l50:.1f} / {l99:.1f}",
                f"{l50 / a50:.2f}x / {l99 / a99:.2f}x",
            ]
        )
    print(markdown_table(header, table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
