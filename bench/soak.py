"""Soak benchmark: concurrent clients mixing every kind of request against the embedded stack.

    .venv/bin/python -m bench.soak [--minutes 10] [--clients 16] [--seed-docs 300] [--json]

The stack is started as ``sieve up`` starts it (``bench.harness.BenchStack``: the
supervisor's Redis with AOF, model hub, API owning the Edge store, one prefork Celery
worker) on free loopback ports in a temporary data directory. A corpus of SciFact abstracts
(read in place from the shared data set) is seeded as JSON records and indexed first.
Then ``--clients`` threads, each with its own HTTP connection, run for ``--minutes`` a
closed loop of weighted random operations (``bench.soak_mix.ROUTES``) with a short random
think time: queries with rerank on and off, JSON / JSONL / small-file uploads, replaces
(PUT with JSON or a file), deletes, job polls, document lists and reads. Uploads create new
ids while a client is under its share of the corpus and replace live ones above it, and
deletes keep it near the seeded size, so the corpus stays about the same size.

The first ``--warmup`` seconds (default: a tenth of the run, at most 60 s) are warm-up.
RSS of every process of the stack (API; worker parent and its pool children; model hub;
Redis) is sampled every 2 s; "start", "middle" and "end" are the mean of the samples in a
20 s window just after warm-up, around the middle of the measured part, and at its end.

At the end every accepted job is waited for and the document set the clients' accepted
operations imply is checked against the document list, what queries return, and the
store's point count (``bench.soak_check``).

With ``--retention-s`` the stack keeps finished jobs, tombstones and dead blobs only that
long (``SIEVE_RETENTION_*``, the sweep every ``--sweep-every-s``); Redis's ``used_memory``
and the blob directory's size are sampled every 5 s and reported like RSS (start, middle,
end windows after warm-up). A job that expired (404 at the final wait) had ended.

Targets, printed beside the measurements: no 5xx and no transport error; 0 lost,
resurrected or duplicated documents; every job ended; RSS growth <= 10 % after warm-up
(per process tree and in total), and Redis memory and blob bytes <= +10 % when sampled.
Exit status: 1 when a correctness target is missed (a
5xx, a transport error, a lost / resurrected / duplicated / wrong document, a job that did
not end) - those are bugs; RSS and storage growth are printed as met or MISSED but do not
change the exit status, since on a shared machine a 10-minute window cannot tell a warming
cache from a leak.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import redis

from bench.harness import (
    BenchStack,
    PeriodicSampler,
    code_state,
    descendants_rss,
    markdown_table,
    pct,
)
from bench.query import load_queries
from bench.soak_check import EXPIRED, CheckResult, check_final_state, wait_jobs
from bench.soak_mix import ROUTES, Ledger, Recorder, SoakClient, TextSource, record_expectation

__all__ = ["SoakResult", "render", "run_soak"]

COLLECTION = "soak"
RSS_TARGET = 0.10
RSS_EVERY_S = 2.0
RSS_WINDOW_S = 20.0
STORAGE_EVERY_S = 5.0
SEED_BATCH = 100


class RssSampler(PeriodicSampler):
    """RSS of named process trees every few seconds, in a thread; each sample timestamped."""

    def __init__(self, roots: Mapping[str, int], every_s: float = RSS_EVERY_S) -> None:
        super().__init__(every_s)
        self._roots = {name: psutil.Process(pid) for name, pid in roots.items()}
        self.samples: list[tuple[float, dict[str, int]]] = []

    def sample(self) -> dict[str, int]:
        """One reading: each root alone, its descendants as ``<name> children``."""
        out: dict[str, int] = {}
        for name, root in self._roots.items():
            try:
                out[name] = root.memory_info().rss
            except psutil.Error:
                continue
            kids = descendants_rss(root)
            if kids:
                out[f"{name} children"] = sum(kids)
        return out

    def tick(self) -> None:
        """Keep one timestamped reading."""
        self.samples.append((time.monotonic(), self.sample()))

    def window(self, start: float, end: float) -> dict[str, float]:
        """Mean RSS per process over the samples taken in ``[start, end]``."""
        picked = [s for t, s in self.samples if start <= t <= end]
        names = sorted({n for s in picked for n in s})
        return {n: statistics.mean(s.get(n, 0) for s in picked) for n in names}


class StorageSampler(PeriodicSampler):
    """Redis's used memory and the blob directory's size (bytes, files) every few seconds."""

    def __init__(self, redis_url: str, blob_dir: Path, every_s: float = STORAGE_EVERY_S) -> None:
        super().__init__(every_s)
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=5)
        self._blob_dir = blob_dir
        self.samples: list[tuple[float, dict[str, float]]] = []

    def sample(self) -> dict[str, float]:
        """One reading (an empty one when Redis does not answer)."""
        try:
            info = self._redis.info("memory")
            keys = self._redis.dbsize()
        except redis.RedisError:
            return {}
        sizes = [f.stat().st_size for f in self._blob_dir.rglob("*") if f.is_file()]
        return {
            "Redis used_memory (MiB)": int(info["used_memory"]) / 2**20,
            "Redis keys": float(keys),
            "blob dir (MiB)": sum(sizes) / 2**20,
            "blob files": float(len(sizes)),
        }

    def tick(self) -> None:
        """Keep one timestamped reading."""
        reading = self.sample()
        if reading:
            self.samples.append((time.monotonic(), reading))

    def window(self, start: float, end: float) -> dict[str, float]:
        """Mean of each quantity over the samples taken in ``[start, end]``."""
        picked = [s for t, s in self.samples if start <= t <= end]
        names = sorted({n for s in picked for n in s})
        return {n: statistics.mean(s[n] for s in picked if n in s) for n in names}

    def close(self) -> None:
        """Close the Redis connection (idempotent)."""
        self._redis.close()

    def __exit__(self, *exc: object) -> None:
        """Stop sampling and close the connection: a sampler is used for one window."""
        super().__exit__(*exc)
        self.close()


@dataclass
class SoakResult:
    """Everything the soak measured."""

    clients: int
    minutes: float
    warmup_s: float
    seed_docs: int
    statuses: dict[str, dict[str, int]]
    latency_ms: dict[str, dict[str, float]]
    rerank_statuses: dict[str, int]
    rss_mib: dict[str, dict[str, float]]  # phase -> process -> MiB
    jobs: dict[str, int]
    check: CheckResult
    drain_s: float
    load_average: list[float]
    error_samples: list[str] = field(default_factory=list)
    code: str = ""
    retention_s: float | None = None
    storage: dict[str, dict[str, float]] = field(default_factory=dict)  # phase -> quantity
    ledgers: list[Ledger] = field(default_factory=list)  # what the check compared with

    @property
    def server_errors(self) -> int:
        return sum(n for by in self.statuses.values() for s, n in by.items() if s.startswith("5"))

    @property
    def transport_errors(self) -> int:
        return sum(
            n for by in self.statuses.values() for s, n in by.items() if s.startswith("error")
        )

    @property
    def unfinished_jobs(self) -> int:
        return sum(n for s, n in self.jobs.items() if s not in _ENDED)

    def rss_growth(self) -> dict[str, float]:
        start, end = self.rss_mib.get("start", {}), self.rss_mib.get("end", {})
        out = {n: end[n] / start[n] - 1 for n in start if n in end and start[n] > 0}
        if start and end:
            out["total"] = sum(end.values()) / sum(start.values()) - 1
        return out

    def storage_growth(self) -> dict[str, float]:
        start, end = self.storage.get("start", {}), self.storage.get("end", {})
        return {n: end[n] / start[n] - 1 for n in start if n in end and start[n] > 0}

    @property
    def correct(self) -> bool:
        return (
            self.server_errors == 0
            and self.transport_errors == 0
            and self.unfinished_jobs == 0
            and self.check.clean
        )


_ENDED = ("completed", "completed_with_errors", "cancelled", EXPIRED)


def seed_corpus(
    api: httpx.Client, clients: list[SoakClient], docs: int, timeout_s: float
) -> list[str]:
    """Upload ``docs`` records, owned round-robin by the clients; wait until all are indexed."""
    records = []
    for n in range(docs):
        owner = clients[n % len(clients)]
        records.append((owner, owner.record(owner.new_id())))
    jobs = []
    for at in range(0, len(records), SEED_BATCH):
        part = records[at : at + SEED_BATCH]
        resp = api.post(
            f"/v1/collections/{COLLECTION}/documents",
            json={"documents": [r for _, r in part]},
        )
        resp.raise_for_status()
        body = resp.json()
        if body["failed"]:
            raise SystemExit(f"the API refused seed records: {body['failed']}")
        jobs.append(body["job_id"])
        for owner, record in part:
            owner.ledger.accepted(record["id"], record_expectation(record))
    ended = wait_jobs(api, jobs, timeout_s)
    if set(ended) - {"completed"}:
        raise SystemExit(f"seeding did not complete: {ended}")
    return jobs


def run_soak(
    api_url: str,
    *,
    clients: int,
    seconds: float,
    warmup_s: float,
    seed_docs: int,
    think_s: float = 0.5,
    headers: Mapping[str, str] | None = None,
    processes: Mapping[str, int] | None = None,
    job_timeout_s: float = 1800.0,
    seed: int = 0,
    storage: StorageSampler | None = None,
    retention_s: float | None = None,
) -> SoakResult:
    """Seed, run the mix for ``warmup_s + seconds``, wait for every job, check the final set.

    ``processes`` (name -> pid) are the stack's process trees whose RSS is sampled;
    ``storage`` samples Redis and the blob directory alongside; ``retention_s`` says the
    stack lets finished jobs expire (so the final wait counts a 404 as ``expired``).
    """
    code = code_state()
    texts, queries, recorder = TextSource(), load_queries(), Recorder()

    def make() -> httpx.Client:
        return httpx.Client(base_url=api_url, headers=dict(headers or {}), timeout=300)

    with make() as admin:
        admin.post("/v1/collections", json={"name": COLLECTION}).raise_for_status()
        soakers = [
            SoakClient(
                number=n,
                api=make(),
                collection=COLLECTION,
                texts=texts,
                queries=queries,
                recorder=recorder,
                target_live=max(1, seed_docs // clients),
                think_s=think_s,
                seed=seed,
            )
            for n in range(clients)
        ]
        try:
            print(f"seeding {seed_docs} documents ...", file=sys.stderr, flush=True)
            seed_jobs = seed_corpus(admin, soakers, seed_docs, job_timeout_s)
            sampler = RssSampler(processes or {})
            stop = threading.Event()
            with sampler, storage or _NoSampler():
                t0 = time.monotonic()
                until = t0 + warmup_s + seconds
                threads = [
                    threading.Thread(target=c.run, args=(until, stop), daemon=True) for c in soakers
                ]
                print(
                    f"{clients} clients for {warmup_s:.0f} s warm-up + {seconds:.0f} s ...",
                    file=sys.stderr,
                    flush=True,
                )
                for t in threads:
                    t.start()
                try:
                    for t in threads:
                        t.join()
                except KeyboardInterrupt:
                    stop.set()
                    for t in threads:
                        t.join()
                t_end = time.monotonic()
            measured_start = t0 + warmup_s
            middle = (measured_start + t_end) / 2
            windows = {
                "start": (measured_start, measured_start + RSS_WINDOW_S),
                "middle": (middle - RSS_WINDOW_S / 2, middle + RSS_WINDOW_S / 2),
                "end": (t_end - RSS_WINDOW_S, t_end),
            }
            rss = {phase: sampler.window(*span) for phase, span in windows.items()}
            stored = (
                {phase: storage.window(*span) for phase, span in windows.items()}
                if storage is not None
                else {}
            )
            print("waiting for every job ...", file=sys.stderr, flush=True)
            jobs = [j for c in soakers for j in c.ledger.jobs]
            drain_t = time.monotonic()
            ended = wait_jobs(
                admin, jobs + seed_jobs, job_timeout_s, jobs_expire=retention_s is not None
            )
            drain_s = time.monotonic() - drain_t
            print("checking the final document set ...", file=sys.stderr, flush=True)
            check = check_final_state(admin, COLLECTION, [c.ledger for c in soakers])
        finally:
            for c in soakers:
                c.api.close()
    mib = {ph: {n: v / 2**20 for n, v in by.items()} for ph, by in rss.items()}
    return SoakResult(
        clients=clients,
        minutes=seconds / 60,
        warmup_s=warmup_s,
        seed_docs=seed_docs,
        statuses={r: dict(c) for r, c in recorder.statuses.items()},
        latency_ms={
            r: {"p50": pct(v, 50), "p95": pct(v, 95)} for r, v in recorder.latencies.items() if v
        },
        rerank_statuses=dict(recorder.rerank),
        rss_mib=mib,
        jobs=ended,
        check=check,
        drain_s=drain_s,
        load_average=[round(x, 2) for x in os.getloadavg()],
        error_samples=recorder.error_samples,
        code=code,
        ledgers=[c.ledger for c in soakers],
        retention_s=retention_s,
        storage=stored,
    )


class _NoSampler:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def _met(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def render(r: SoakResult, load_at_start: list[float] | None = None) -> str:
    """The markdown report: requests by route, RSS by process, the final check, targets."""
    statuses = sorted({s for by in r.statuses.values() for s in by})
    routes = [name for name, _ in ROUTES if name in r.statuses]
    rows = []
    for route in routes:
        by, lat = r.statuses[route], r.latency_ms.get(route, {})
        rows.append(
            [
                route,
                f"{sum(by.values()):,}",
                *[f"{by.get(s, 0):,}" for s in statuses],
                f"{lat.get('p50', 0):,.0f}",
                f"{lat.get('p95', 0):,.0f}",
            ]
        )
    total = {s: sum(by.get(s, 0) for by in r.statuses.values()) for s in statuses}
    rows.append(
        ["**all**", f"{sum(total.values()):,}", *[f"{total[s]:,}" for s in statuses], "", ""]
    )
    requests = markdown_table(["route", "requests", *statuses, "p50 ms", "p95 ms"], rows)

    growth = r.rss_growth()
    names = sorted({n for by in r.rss_mib.values() for n in by})
    rss_rows = [
        [
            n,
            *[f"{r.rss_mib.get(ph, {}).get(n, 0):,.0f}" for ph in ("start", "middle", "end")],
            f"{growth.get(n, 0):+.1%}",
            _met(growth.get(n, 0) <= RSS_TARGET),
        ]
        for n in names
    ]
    if names:
        sums = [sum(r.rss_mib.get(ph, {}).values()) for ph in ("start", "middle", "end")]
        rss_rows.append(
            [
                "**total**",
                *[f"{s:,.0f}" for s in sums],
                f"{growth.get('total', 0):+.1%}",
                _met(growth.get("total", 0) <= RSS_TARGET),
            ]
        )
    rss = markdown_table(
        ["process (RSS MiB)", "start", "middle", "end", "growth", "target ≤ +10 %"], rss_rows
    )

    sgrowth = r.storage_growth()
    storage_rows = [
        [
            n,
            *[f"{r.storage.get(ph, {}).get(n, 0):,.1f}" for ph in ("start", "middle", "end")],
            f"{sgrowth.get(n, 0):+.1%}",
            _met(sgrowth.get(n, 0) <= RSS_TARGET),
        ]
        for n in sorted({n for by in r.storage.values() for n in by})
    ]
    storage_table = markdown_table(
        ["quantity", "start", "middle", "end", "growth", "target ≤ +10 %"], storage_rows
    )

    c = r.check
    check_rows = [
        ["5xx responses", f"{r.server_errors}", "0", _met(r.server_errors == 0)],
        [
            "transport errors / timeouts",
            f"{r.transport_errors}",
            "0",
            _met(r.transport_errors == 0),
        ],
        [
            "jobs ended",
            f"{sum(r.jobs.values()) - r.unfinished_jobs:,} of {sum(r.jobs.values()):,} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(r.jobs.items()))})",
            "all",
            _met(r.unfinished_jobs == 0),
        ],
        [
            "expected documents (live / deleted / uncertain)",
            f"{c.expected_live:,} / {c.expected_deleted:,} / {c.uncertain}",
            "",
            "",
        ],
        [
            "lost (list / query)",
            f"{c.lost} ({len(c.lost_in_list)} / {len(c.lost_in_query)})",
            "0",
            _met(c.lost == 0),
        ],
        [
            "resurrected (list / query)",
            f"{c.resurrected} ({len(c.resurrected_in_list)} / {len(c.resurrected_in_query)})",
            "0",
            _met(c.resurrected == 0),
        ],
        [
            "duplicated (list / query)",
            f"{c.duplicated} ({len(c.duplicated_in_list)} / {len(c.duplicated_in_query)})",
            "0",
            _met(c.duplicated == 0),
        ],
        [
            "wrong content / not indexed / stale chunks",
            f"{len(c.wrong_content)} / {len(c.not_indexed)} / {len(c.stale_chunks)}",
            "0",
            _met(c.wrong == 0),
        ],
        ["unknown ids listed", f"{len(c.unknown_in_list)}", "0", _met(not c.unknown_in_list)],
        [
            "store points / listed chunks",
            f"{c.store_points:,} / {c.listed_chunks:,}",
            "equal",
            _met(c.store_points == c.listed_chunks),
        ],
        [
            "records refused at upload",
            f"{len(c.unexpected_failures)}",
            "0",
            _met(not c.unexpected_failures),
        ],
        [
            "RSS growth after warm-up (total)",
            f"{growth.get('total', 0):+.1%}",
            "≤ +10 %",
            _met(growth.get("total", 0) <= RSS_TARGET),
        ],
    ]
    checks = markdown_table(["check", "measured", "target", ""], check_rows)
    load_start = (
        f"{load_at_start[0]:.1f} / {load_at_start[1]:.1f} / {load_at_start[2]:.1f} at the start, "
        if load_at_start
        else ""
    )
    la = r.load_average
    lines = [
        f"\n### Soak: {r.clients} clients, {r.minutes:g} min after {r.warmup_s:.0f} s warm-up, "
        f"{r.seed_docs} seeded SciFact documents ({os.cpu_count()} CPUs, load average "
        f"{load_start}{la[0]:.1f} / {la[1]:.1f} / {la[2]:.1f} at the end)\n",
        "Requests by route and status (warm-up included); latency per route:\n",
        requests,
        f"\nrerank statuses of 200 answers: {r.rerank_statuses}",
        "\nRSS of every process of the stack (mean of 20 s windows):\n",
        rss,
        *(
            [
                f"\nRedis and the blob directory (retention {r.retention_s:g} s; mean of "
                f"{RSS_WINDOW_S:.0f} s windows, sampled every {STORAGE_EVERY_S:.0f} s):\n",
                storage_table,
            ]
            if r.storage
            else []
        ),
        f"\nFinal check (jobs drained in {r.drain_s:.0f} s after the clients stopped):\n",
        checks,
        f"\ncorrectness targets: {'all met' if r.correct else 'MISSED'}; "
        f"code: {r.code or 'unknown'}",
    ]
    detail = _details(r)
    return "\n".join(lines + ([detail] if detail else []))


def _details(r: SoakResult) -> str:
    c = r.check
    parts: list[str] = []
    for label, ids in (
        ("lost in list", c.lost_in_list),
        ("lost in query", c.lost_in_query),
        ("resurrected in list", c.resurrected_in_list),
        ("resurrected in query", c.resurrected_in_query),
        ("duplicated in list", c.duplicated_in_list),
        ("duplicated in query", c.duplicated_in_query),
        ("wrong content", c.wrong_content),
        ("stale chunks", c.stale_chunks),
        ("unknown", c.unknown_in_list),
    ):
        if ids:
            parts.append(f"{label}: {sorted(ids)[:20]}")
    if c.not_indexed:
        parts.append(f"not indexed: {dict(list(c.not_indexed.items())[:20])}")
    if c.unexpected_failures:
        parts.append(f"refused records: {dict(list(c.unexpected_failures.items())[:20])}")
    if r.error_samples:
        parts.append("first errors:\n  " + "\n  ".join(r.error_samples))
    return "\n".join(parts)


def _retention_env(args: argparse.Namespace) -> dict[str, str]:
    """The stack's ``SIEVE_RETENTION_*`` for ``--retention-s`` (none without it)."""
    if args.retention_s is None:
        return {}
    every = args.sweep_every_s if args.sweep_every_s is not None else args.retention_s / 6
    value = str(args.retention_s)
    return {
        "SIEVE_RETENTION_JOBS_S": value,
        "SIEVE_RETENTION_TOMBSTONES_S": value,
        "SIEVE_RETENTION_BLOBS_S": value,
        "SIEVE_RETENTION_SWEEP_EVERY_S": str(max(0.5, every)),
    }


def main() -> None:
    """Start the stack, soak it, print the report (or JSON); exit 1 on a correctness miss."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0, help="measured minutes")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=None, help="seconds (default: 10 %%, ≤ 60)")
    parser.add_argument("--seed-docs", type=int, default=300, help="documents indexed first")
    parser.add_argument("--think-ms", type=float, default=500, help="mean pause between requests")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--retention-s",
        type=float,
        default=None,
        help="keep finished jobs, tombstones and dead blobs this long (default: the settings')",
    )
    parser.add_argument(
        "--sweep-every-s", type=float, default=None, help="retention sweep (default: retention/6)"
    )
    args = parser.parse_args()
    seconds = args.minutes * 60
    warmup = args.warmup if args.warmup is not None else min(60.0, seconds / 10)
    load_start = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="sieve-bench-soak-") as tmp:
        # Every client is the one open-mode tenant: let each have an upload in flight.
        quota = {"SIEVE_QUOTA_UPLOADS_IN_FLIGHT": str(max(4, args.clients))}
        stack = BenchStack.on_free_ports(Path(tmp), **quota, **_retention_env(args))
        failed = True
        storage: StorageSampler | None = None
        try:
            stack.start()
            storage = StorageSampler(stack.redis_url, Path(tmp) / "blobs")
            procs = {
                "API": stack.pid("api"),
                "worker": stack.pid("worker"),
                "model hub": stack.pid("modelhub"),
                "Redis": stack.pid("redis"),
            }
            result = run_soak(
                stack.api_url,
                clients=args.clients,
                seconds=seconds,
                warmup_s=warmup,
                seed_docs=args.seed_docs,
                think_s=args.think_ms / 1000,
                processes=procs,
                storage=storage,
                retention_s=args.retention_s,
            )
            stack.check_alive()
            failed = not result.correct
        finally:
            if storage is not None:
                storage.close()
            stack.stop_and_report(failed)
    if args.json:
        out = {k: v for k, v in result.__dict__.items() if k not in ("check", "ledgers")}
        out["check"] = result.check.__dict__
        out["rss_growth"] = result.rss_growth()
        out["storage_growth"] = result.storage_growth()
        print(json.dumps(out, indent=2, default=str))
    else:
        print(render(result, load_start))
    sys.exit(0 if result.correct else 1)


if __name__ == "__main__":
    main()
