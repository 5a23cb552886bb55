"""What collections cost the store owner: the API process's threads and RSS at 0, 50 and 200
collections, each collection opened (its counts read) after it is created.

    .venv/bin/python -m bench.collections [--stops 0,50,200] [--parallel 4] [--json]

The embedded stack (``sieve up``'s supervisor, no ingest worker) on free ports in a
temporary directory; collections are created over HTTP, then every one of them is read
(``GET /v1/collections/{name}`` counts its chunks, which opens its Edge shard), so each
has been open at least once when the process is measured (psutil on the API's pid). Issue
19 measured 1,602 threads and 5.6 GiB at 200 collections before open shards were bounded.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psutil

from bench.harness import BenchStack, code_state, markdown_table

__all__ = ["CostRow", "grow_and_measure", "main"]


@dataclass(frozen=True)
class CostRow:
    """The API process after ``collections`` collections were created and read."""

    collections: int
    threads: int
    rss_mib: float
    create_s: float


def _measure(proc: psutil.Process) -> tuple[int, float]:
    return proc.num_threads(), proc.memory_info().rss / 2**20


def grow_and_measure(
    client: httpx.Client,
    api_pid: int,
    stops: list[int],
    *,
    prefix: str = "cost",
    parallel: int = 4,
) -> list[CostRow]:
    """Create collections up to each stop, read every one, and measure the API process.

    ``parallel`` requests at a time: a create is mostly Edge's fsyncs (~0.8 s each here).
    """
    proc = psutil.Process(api_pid)
    rows: list[CostRow] = []
    have = 0

    def create(n: int) -> None:
        resp = client.post("/v1/collections", json={"name": f"{prefix}{n}"})
        if resp.status_code != 201:
            raise RuntimeError(f"creating collection {n}: {resp.status_code} {resp.text}")

    def read(n: int) -> None:
        resp = client.get(f"/v1/collections/{prefix}{n}")
        if resp.status_code != 200:
            raise RuntimeError(f"reading collection {n}: {resp.status_code} {resp.text}")

    for stop in stops:
        started = time.perf_counter()
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(create, range(have, stop)))
            create_s = time.perf_counter() - started
            have = max(have, stop)
            list(pool.map(read, range(have)))
        threads, rss = _measure(proc)
        rows.append(CostRow(stop, threads, round(rss, 1), round(create_s, 1)))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (or JSON)."""
    parser = argparse.ArgumentParser(prog="bench.collections", description=__doc__)
    parser.add_argument("--stops", default="0,50,200", help="collection counts to measure at")
    parser.add_argument("--parallel", type=int, default=4, help="requests at a time")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    stops = sorted({int(s) for s in args.stops.split(",")})
    with tempfile.TemporaryDirectory(prefix="sieve-bench-collections-") as tmp:
        stack = BenchStack.on_free_ports(Path(tmp), SIEVE_QUOTA_COLLECTIONS=str(max(stops) + 1))
        failed = True
        try:
            stack.start_without_worker(lambda _redis_url: None)
            with httpx.Client(base_url=stack.api_url, timeout=120) as client:
                rows = grow_and_measure(client, stack.pid("api"), stops, parallel=args.parallel)
            failed = False
        finally:
            stack.stop_and_report(failed)
    if args.json:
        print(json.dumps({"code": code_state(), "rows": [asdict(r) for r in rows]}, indent=2))
        return 0
    print(f"collections benchmark ({code_state()})\n")
    table = [
        [str(r.collections), str(r.threads), f"{r.rss_mib:.0f}", f"{r.create_s:.1f}"] for r in rows
    ]
    print(markdown_table(["collections", "API threads", "API RSS MiB", "create s"], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
