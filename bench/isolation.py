"""Isolation benchmark: does tenant B's service hold while tenant A runs the worst mix?

    .venv/bin/python -m bench.isolation [--seconds 30] [--docs 300] [--json]

One embedded stack (``sieve up``'s supervisor) with two tenants. B has a collection of
``--docs`` SciFact abstracts; two B clients alternate a query (rerank off: this measures the
API, not the cross-encoder) and ``GET /v1/collections``. Three windows of ``--seconds``
each, in one run: B alone, B while A runs its mix, B alone again (the two alone windows
together are the baseline, so drift in the machine's load falls on both sides).

A's mix, each in its own thread(s), without pause: GETs of a large page image (4 clients),
uploads of three tar.gz archives in one request, large multipart uploads (four files of
``--file-mib``), collection churn (create, upload, delete), and a flood of feedback
judgments. A's uploads are random bytes (the worker refuses them at once as unsupported):
what is measured is the API's own work on them, not indexing. One more part, measured
alone and not in the whole mix: A indexing real SciFact records, 25 per upload, each
upload waiting for its job (``?wait=true``), so the worker and the model hub work for A
the whole window.

A's clients run in a process of their own (``--same-process`` for threads of B's, where
they held B's clients' GIL). Reported: B's p50/p99 per request kind in each window and the
ratio (target <= 1.5x), A's requests by status (503s are the CPU pool saying no), the
API's RSS and thread count before and after A's window, and how late the API's event loop
woke up in B's first alone window and in the whole mix (``sieve_event_loop_lag_seconds``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import psutil
from PIL import Image, ImageDraw
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import (
    SCIFACT_DIR,
    BenchStack,
    TreeSampler,
    code_state,
    machine_note,
    markdown_table,
    pct,
)
from bench.ingest import load_corpus, wait_jobs

KEY_A = "isolation-tenant-a-key-0123456789"
KEY_B = "isolation-tenant-b-key-9876543210"
METRICS_KEY = "isolation-metrics-key-0123456789"
LAG_METRIC = "sieve_event_loop_lag_seconds"
STALL_S = 0.02  # a wake-up later than this: every request in flight waited as long
QUERIES = (
    "how do cells repair damaged DNA",
    "vitamin D deficiency and bone fractures",
    "antibiotic resistance in hospital bacteria",
    "effect of exercise on insulin sensitivity",
)
MIB = 1024 * 1024


@dataclass
class Samples:
    """Latencies (ms) by request kind, and statuses by kind."""

    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, ms: float, status: int) -> None:
        """Record one request."""
        with self.lock:
            self.latency_ms.setdefault(kind, []).append(ms)
            by_status = self.statuses.setdefault(kind, {})
            by_status[status] = by_status.get(status, 0) + 1


def timed(samples: Samples, kind: str, call: Callable[[], httpx.Response]) -> httpx.Response | None:
    """Run ``call``; record its latency and status (0 for a transport error)."""
    start = time.perf_counter()
    resp = None
    try:
        resp = call()
        status = resp.status_code
    except httpx.TransportError:
        status = 0
    samples.add(kind, (time.perf_counter() - start) * 1000, status)
    return resp


STAGES = ("embed", "recall", "total")


def record_stages(samples: Samples, resp: httpx.Response | None) -> None:
    """A query's own ``timings_ms`` (measured inside the engine) as ``query.<stage>``."""
    if resp is None or resp.status_code != 200:
        return
    timings = resp.json().get("timings_ms", {})
    for stage in STAGES:
        if stage in timings:
            samples.add(f"query.{stage}", float(timings[stage]), 200)


def loop_until(stop: Stop, body: Callable[[int], None]) -> threading.Thread:
    """A thread calling ``body(n)`` for n = 0, 1, ... until ``stop`` is set."""

    def run() -> None:
        n = 0
        while not stop.is_set():
            body(n)
            n += 1

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def client(api_url: str, key: str) -> httpx.Client:
    """A client for one tenant."""
    return httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {key}"}, timeout=300)


# ---------------------------------------------------------------- tenant B


def b_window(stack: BenchStack, seconds: float, clients: int = 2) -> Samples:
    """B's two clients alternating a query and a list for ``seconds``."""
    samples = Samples()
    stop = threading.Event()
    handles = [client(stack.api_url, KEY_B) for _ in range(clients)]

    def worker(c: httpx.Client, offset: int) -> Callable[[int], None]:
        def body(n: int) -> None:
            query = {"query": QUERIES[(n + offset) % len(QUERIES)], "rerank": False, "top_n": 10}
            resp = timed(samples, "query", lambda: c.post("/v1/collections/b/query", json=query))
            record_stages(samples, resp)
            timed(samples, "list", lambda: c.get("/v1/collections"))

        return body

    threads = [loop_until(stop, worker(c, i)) for i, c in enumerate(handles)]
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    for c in handles:
        c.close()
    return samples


# ---------------------------------------------------------------- tenant A


def big_image(side: int) -> bytes:
    """A ``side`` x ``side`` PNG with some lines of text (OCR reads it) and noise blocks."""
    img = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(img)
    for row in range(0, side, 160):
        draw.text((40, row + 20), "isolation benchmark page image " * 3, fill="black")
    noise = Image.frombytes("RGB", (side // 4, side // 4), os.urandom((side // 4) ** 2 * 3))
    img.paste(noise, (side // 2, side // 2))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A tar.gz of ``members`` (fast compression: the payload is random anyway)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def setup_a(stack: BenchStack, image_side: int, timeout_s: float) -> None:
    """A's collection with one large page image (indexed, so every image route serves it)."""
    with client(stack.api_url, KEY_A) as a:
        a.post("/v1/collections", json={"name": "a"}).raise_for_status()
        files = [("files", ("big.png", big_image(image_side), "image/png"))]
        job = a.post("/v1/collections/a/documents", files=files).raise_for_status().json()
        wait_jobs(a, [job["job_id"]], stack, timeout_s)


@dataclass(frozen=True)
class Payloads:
    """A's upload bodies, built before a window starts (so the benchmark's own CPU does
    not compete in it); the API does the same work on a repeated body (parse, expand,
    hash, stage, accept), only the worker finds its documents unchanged."""

    archives: list[tuple[str, tuple[str, bytes, str]]]
    multipart: list[tuple[str, tuple[str, bytes, str]]]
    # Real SciFact records for the "ingest" part (not B's: they start after B's slice).
    records: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def build(cls, file_mib: int) -> Payloads:
        """Three tar.gz of 4 x 2 MiB random members; four random files of ``file_mib``."""
        archives = [
            (
                "files",
                (
                    f"r{k}.tar.gz",
                    tar_gz({f"r{k}/m{i}.bin": os.urandom(2 * MIB) for i in range(4)}),
                    "application/gzip",
                ),
            )
            for k in range(3)
        ]
        multipart = [
            ("files", (f"big{k}.bin", os.urandom(file_mib * MIB), "application/octet-stream"))
            for k in range(4)
        ]
        return cls(archives=archives, multipart=multipart, records=_ingest_records())


MIX = ("image", "archives", "multipart", "churn", "feedback")
# Also measured alone, not in the whole mix (the worst mix is the API's own work):
# A really indexing documents, one batch in flight at a time, as a bulk loader would.
PARTS = (*MIX, "ingest")
INGEST_BATCH = 25
INGEST_SKIP = 2000  # A's records start here; B's collection is the first --docs


def _ingest_records(count: int = 1000) -> list[dict[str, Any]]:
    """SciFact records after B's, for A to index (each round under new ids)."""
    out: list[dict[str, Any]] = []
    with (SCIFACT_DIR / "corpus.jsonl").open("rb") as fh:
        for n, line in enumerate(fh):
            if n >= INGEST_SKIP and line.strip():
                out.append(json.loads(line))
                if len(out) >= count:
                    break
    return out


class Stop(Protocol):
    """A threading or multiprocessing event."""

    def is_set(self) -> bool:
        """Whether the window is over."""
        ...


def a_mix(
    api_url: str, stop: Stop, payloads: Payloads, parts: tuple[str, ...]
) -> tuple[Samples, Callable[[], None]]:
    """Start A's threads for ``parts`` of ``MIX``; returns their samples and a join."""
    samples = Samples()
    threads: list[threading.Thread] = []
    handles: list[httpx.Client] = []

    def start(body: Callable[[httpx.Client, int], None]) -> None:
        c = client(api_url, KEY_A)
        handles.append(c)
        threads.append(loop_until(stop, lambda n: body(c, n)))

    def image(c: httpx.Client, n: int) -> None:
        page = "/v1/collections/a/documents/big.png/image"
        timed(samples, "image GET", lambda: c.get(page, params={"n": n}))

    def archives(c: httpx.Client, _n: int) -> None:
        files = payloads.archives
        timed(samples, "archive upload", lambda: c.post("/v1/collections/a/documents", files=files))

    def multipart(c: httpx.Client, _n: int) -> None:
        files = payloads.multipart
        timed(
            samples, "large multipart", lambda: c.post("/v1/collections/a/documents", files=files)
        )

    def churn(c: httpx.Client, n: int) -> None:
        name = f"churn{n}"
        timed(samples, "collection create", lambda: c.post("/v1/collections", json={"name": name}))
        doc = {"documents": [{"id": "d", "text": "churned text " * 20}]}
        timed(
            samples, "churn upload", lambda: c.post(f"/v1/collections/{name}/documents", json=doc)
        )
        timed(samples, "collection delete", lambda: c.delete(f"/v1/collections/{name}"))

    def feedback(c: httpx.Client, n: int) -> None:
        body = {
            "query": f"flood query {n} " + "x" * 4000,
            "document_id": "big.png",
            "relevant": True,
        }
        timed(samples, "feedback", lambda: c.post("/v1/collections/a/feedback", json=body))

    # New ids in every window (the driver's pid): a window re-sending an earlier one's
    # documents would find them unchanged and embed nothing.
    salt = os.getpid()

    def ingest(c: httpx.Client, n: int) -> None:
        start = (n * INGEST_BATCH) % max(1, len(payloads.records) - INGEST_BATCH)
        lines = [
            json.dumps({**r, "_id": f"{r['_id']}-{salt}-{n}"}).encode()
            for r in payloads.records[start : start + INGEST_BATCH]
        ]
        timed(
            samples,
            "ingest batch (waits)",
            lambda: c.post(
                "/v1/collections/a/documents",
                params={"wait": "true", "timeout_s": 120},
                content=b"\n".join(lines),
                headers={"content-type": "application/x-ndjson"},
            ),
        )

    bodies = {
        "archives": archives,
        "multipart": multipart,
        "churn": churn,
        "feedback": feedback,
        "ingest": ingest,
    }
    for part in parts:
        for _ in range(4 if part == "image" else 1):
            start(image if part == "image" else bodies[part])

    def join() -> None:
        for t in threads:
            t.join()
        for h in handles:
            h.close()

    return samples, join


# ---------------------------------------------------------------- the run


def pooled(windows: list[Samples], kind: str) -> list[float]:
    """One kind's latencies over several windows (the alone windows, together)."""
    return [ms for s in windows for ms in s.latency_ms.get(kind, [])]


def stage_rows(alone: list[Samples], loaded: Samples) -> list[dict[str, Any]]:
    """Where B's query time goes: the engine's stages (embed, recall, its total) and the
    client's whole request, p50 alone and with A's whole mix."""
    rows = []
    for kind in [*(f"query.{stage}" for stage in STAGES), "query"]:
        base = pooled(alone, kind)
        under = loaded.latency_ms.get(kind, [])
        if base and under:
            rows.append({"kind": kind, "alone_p50": pct(base, 50), "loaded_p50": pct(under, 50)})
    return rows


def api_state(stack: BenchStack) -> dict[str, float]:
    """The API process's RSS (MiB) and thread count now."""
    proc = psutil.Process(stack.pid("api"))
    return {"rss_mib": proc.memory_info().rss / MIB, "threads": float(proc.num_threads())}


def summarize(alone: list[Samples], loaded: Samples) -> list[dict[str, Any]]:
    """Per B request kind: p50/p99 alone (both windows) and under A, and the ratios."""
    rows = []
    for kind in ("query", "list"):
        base = pooled(alone, kind)
        under = loaded.latency_ms.get(kind, [])
        row: dict[str, Any] = {"kind": kind, "n_alone": len(base), "n_loaded": len(under)}
        for q in (50, 99):
            row[f"alone_p{q}"] = pct(base, q)
            row[f"loaded_p{q}"] = pct(under, q)
            row[f"ratio_p{q}"] = row[f"loaded_p{q}"] / row[f"alone_p{q}"]
        row["statuses"] = {
            "alone": [s.statuses.get(kind, {}) for s in alone],
            "loaded": loaded.statuses.get(kind, {}),
        }
        rows.append(row)
    return rows


def _a_driver(
    api_url: str,
    file_mib: int,
    parts: tuple[str, ...],
    stop: Stop,
    ready: Any,
    out: Any,
) -> None:
    """A's process: build the payloads, say ready, run the mix until ``stop``, send the
    samples back."""
    payloads = Payloads.build(file_mib)
    samples, join = a_mix(api_url, stop, payloads, parts)
    ready.set()
    join()
    out.put((samples.latency_ms, samples.statuses))


def _cpu_s(pid: int, *, tree: bool) -> float:
    """CPU seconds (user + system) so far of a process, and of its live descendants too."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for proc in [root, *(root.children(recursive=True) if tree else [])]:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
    return total


class CpuMeter:
    """Where the machine's CPU went in a window: each stack child's process tree, the
    benchmark's own process (B's clients, and A's when they are threads of it), A's process,
    and the machine as a whole (busy CPU seconds of all cores)."""

    def __init__(self, stack: BenchStack, a_pid: int | None) -> None:
        self._pids = {name: stack.pid(name) for name in ("api", "worker", "modelhub", "redis")}
        self._pids["bench's own process"] = os.getpid()
        if a_pid is not None:
            self._pids["A's clients' process"] = a_pid
        self._start = self._read()
        self._wall = time.monotonic()

    def _read(self) -> dict[str, float]:
        out = {
            name: _cpu_s(pid, tree=name in ("api", "worker", "modelhub"))
            for name, pid in self._pids.items()
        }
        machine = psutil.cpu_times()
        out["machine busy"] = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return out

    def done(self) -> dict[str, float]:
        """CPU seconds per process since the start, the window's wall seconds and cores."""
        end = self._read()
        spent = {name: end[name] - self._start[name] for name in end}
        spent["wall s"] = time.monotonic() - self._wall
        spent["cores"] = float(psutil.cpu_count() or 1)
        return spent


def loaded_window(
    stack: BenchStack, seconds: float, file_mib: int, parts: tuple[str, ...], *, same_process: bool
) -> tuple[Samples, Samples, dict[str, float]]:
    """B's window while A runs ``parts`` of its mix; (B's samples, A's samples, the CPU
    seconds each process spent in it).

    A's clients run in a process of their own: in B's process their threads would hold
    B's clients' GIL (receiving A's image bytes, say), and B's latency would measure the
    benchmark, not Sieve. ``same_process`` runs them as threads here, as before.
    """
    if same_process:
        stop = threading.Event()
        a_samples, join = a_mix(stack.api_url, stop, Payloads.build(file_mib), parts)
        try:
            meter = CpuMeter(stack, None)
            b_samples = b_window(stack, seconds)
            return b_samples, a_samples, meter.done()
        finally:
            stop.set()
            join()
    with a_process(stack.api_url, file_mib, parts) as a:
        meter = CpuMeter(stack, a.pid)
        b_samples = b_window(stack, seconds)
        cpu = meter.done()
    return b_samples, a.samples, cpu


@dataclass
class AProcess:
    """A's clients in their own process: its pid, and its samples once it has stopped."""

    pid: int
    samples: Samples = field(default_factory=Samples)


@contextlib.contextmanager
def a_process(api_url: str, file_mib: int, parts: tuple[str, ...]) -> Iterator[AProcess]:
    """Run ``parts`` of A's mix in a spawned process while the block runs (from when its
    payloads are built); its samples are in ``samples`` after the block."""
    ctx = multiprocessing.get_context("spawn")
    stop, ready, out = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_a_driver, args=(api_url, file_mib, parts, stop, ready, out))
    proc.start()
    assert proc.pid is not None
    a = AProcess(pid=proc.pid)
    try:
        if not ready.wait(120):
            raise RuntimeError("tenant A's process did not start")
        yield a
    finally:
        stop.set()
    latency_ms, statuses = out.get(timeout=600)
    proc.join(60)
    a.samples = Samples(latency_ms=latency_ms, statuses=statuses)


def lag_buckets(stack: BenchStack) -> dict[float, float]:
    """The API's event-loop lag histogram now: cumulative wake-ups per upper bound (s)."""
    auth = {"Authorization": f"Bearer {METRICS_KEY}"}
    text = httpx.get(f"{stack.api_url}/metrics", headers=auth, timeout=60).raise_for_status().text
    return {
        float(sample.labels["le"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == LAG_METRIC
        for sample in family.samples
        if sample.name == f"{LAG_METRIC}_bucket"
    }


def lag_window(before: dict[float, float], after: dict[float, float]) -> dict[str, float]:
    """A window's wake-ups, how many came more than ``STALL_S`` late (a bucket bound of
    the metric), and the bucket bound that holds the 99th percentile of their lag."""
    delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = delta[-1][1] if delta else 0.0
    p99 = next((le for le, n in delta if n >= 0.99 * total), float("inf"))
    under_stall = max((n for le, n in delta if le <= STALL_S), default=0.0)
    return {"wake_ups": total, "stalls": total - under_stall, "p99_le_s": p99}


def run(
    seconds: float, docs: int, file_mib: int, image_side: int, timeout_s: float, same_process: bool
) -> Any:
    """Set both tenants up, then the windows: alone, each part of A's mix, all of it, alone."""
    code = code_state()
    corpus = load_corpus(docs)
    keys = json.dumps({"team-a": KEY_A, "team-b": KEY_B})
    with BenchStack.running(
        "isolation", SIEVE_API_KEYS=keys, SIEVE_API_METRICS_KEY=METRICS_KEY
    ) as stack:
        with client(stack.api_url, KEY_B) as b:
            b.post("/v1/collections", json={"name": "b"}).raise_for_status()
            body = b"\n".join(corpus.lines)
            headers = {"content-type": "application/x-ndjson"}
            job = b.post("/v1/collections/b/documents", content=body, headers=headers)
            wait_jobs(b, [job.raise_for_status().json()["job_id"]], stack, timeout_s)
        print("tenant A's page image ...", flush=True)
        setup_a(stack, image_side, timeout_s)
        print(f"B alone, {seconds:.0f} s ...", flush=True)
        alone_meter = CpuMeter(stack, None)
        lag_start = lag_buckets(stack)
        first = b_window(stack, seconds)
        lag_alone = lag_window(lag_start, lag_buckets(stack))
        cpu_alone = alone_meter.done()
        per_part, cpu_per_part = {}, {}
        for part in PARTS:
            print(f"B with A's {part}, {seconds:.0f} s ...", flush=True)
            b_part, _, cpu_per_part[part] = loaded_window(
                stack, seconds, file_mib, (part,), same_process=same_process
            )
            per_part[part] = summarize([first], b_part)
        before = api_state(stack)
        print(f"B with A's whole mix, {seconds:.0f} s ...", flush=True)
        lag_start = lag_buckets(stack)
        with TreeSampler(stack.pid("api")) as peak:
            loaded, a_samples, cpu = loaded_window(
                stack, seconds, file_mib, MIX, same_process=same_process
            )
        lag_loaded = lag_window(lag_start, lag_buckets(stack))
        after = api_state(stack)
        print(f"B alone again, {seconds:.0f} s ...", flush=True)
        second = b_window(stack, seconds)
        with client(stack.api_url, KEY_A) as a:
            pools = a.get("/readyz").json().get("pools")
    return {
        "b": summarize([first, second], loaded),
        "b_stages": stage_rows([first, second], loaded),
        "b_per_part": per_part,
        "cpu_per_part": cpu_per_part,
        "a": {
            kind: {
                "statuses": dict(sorted(a_samples.statuses[kind].items())),
                "p50_ms": pct(ms, 50),
            }
            for kind, ms in sorted(a_samples.latency_ms.items())
        },
        "cpu_alone": cpu_alone,
        "cpu_loaded": cpu,
        "loop_lag": {"alone": lag_alone, "loaded": lag_loaded},
        "api_before": before,
        "api_after": after,
        "api_peak_rss_mib": peak.peak_single / MIB,
        "pools_at_end": pools,
        "seconds": seconds,
        "a_clients": "threads of B's process" if same_process else "a process of their own",
        "docs": docs,
        "code": code,
        "machine": machine_note(),
    }


def print_report(out: dict[str, Any]) -> None:
    """B's table, A's mix, and the API before/after."""
    print(
        f"\n{out['machine']}; {out['code']}; {out['docs']} docs, {out['seconds']:.0f} s windows; "
        f"A's clients in {out['a_clients']}\n"
    )
    rows = [
        [
            r["kind"],
            f"{r['alone_p50']:.1f}",
            f"{r['alone_p99']:.1f}",
            f"{r['loaded_p50']:.1f}",
            f"{r['loaded_p99']:.1f}",
            f"{r['ratio_p50']:.2f}x",
            f"{r['ratio_p99']:.2f}x",
            f"{r['n_alone']}/{r['n_loaded']}",
        ]
        for r in out["b"]
    ]
    header = ["tenant B", "alone p50 ms", "alone p99", "with A p50", "with A p99"]
    header += ["ratio p50", "ratio p99", "n alone/with"]
    print(markdown_table(header, rows))
    names = {
        "query.embed": "the engine's embed call",
        "query.recall": "the engine's recall (store)",
        "query.total": "the engine's total",
        "query": "the whole request, at the client",
    }
    stage_rows_ = [
        [names[r["kind"]], f"{r['alone_p50']:.1f}", f"{r['loaded_p50']:.1f}"]
        for r in out["b_stages"]
    ]
    print()
    print(markdown_table(["B's query, p50 ms", "alone", "with A's whole mix"], stage_rows_))
    part_rows = [
        [
            part,
            *(f"{r['ratio_p50']:.2f}x / {r['ratio_p99']:.2f}x" for r in rows_),
            f"{out['cpu_per_part'][part]['api']:.1f}",
            f"{out['cpu_per_part'][part]['machine busy']:.1f}",
        ]
        for part, rows_ in out["b_per_part"].items()
    ]
    part_header = ["A runs only", "B query p50 / p99", "B list p50 / p99", "API CPU s"]
    part_header.append("machine busy s")
    print()
    print(markdown_table(part_header, part_rows))
    a_rows = [
        [kind, str(sum(v["statuses"].values())), json.dumps(v["statuses"]), f"{v['p50_ms']:.0f}"]
        for kind, v in out["a"].items()
    ]
    print()
    print(markdown_table(["tenant A's mix", "requests", "statuses", "p50 ms"], a_rows))
    alone, loaded = out["cpu_alone"], out["cpu_loaded"]
    cpu_rows = [
        [name, f"{alone.get(name, 0.0):.1f}", f"{loaded[name]:.1f}"]
        for name in loaded
        if name not in ("wall s", "cores")
    ]
    cpu_rows.append(
        [
            "cores' seconds in the window",
            f"{alone['wall s'] * alone['cores']:.1f}",
            f"{loaded['wall s'] * loaded['cores']:.1f}",
        ]
    )
    print()
    print(markdown_table(["CPU seconds", "B alone (first)", "B with A's whole mix"], cpu_rows))
    lag = out["loop_lag"]
    lag_rows = [
        ["wake-ups (every 50 ms)", *(f"{lag[w]['wake_ups']:.0f}" for w in ("alone", "loaded"))],
        [
            f"of them more than {STALL_S * 1000:.0f} ms late",
            *(f"{lag[w]['stalls']:.0f}" for w in ("alone", "loaded")),
        ],
        ["p99 lag at most, ms", *(f"{lag[w]['p99_le_s'] * 1000:g}" for w in ("alone", "loaded"))],
    ]
    print()
    print(markdown_table(["API event loop", "B alone (first)", "B with A's whole mix"], lag_rows))
    before, after = out["api_before"], out["api_after"]
    print(
        f"\nAPI: RSS {before['rss_mib']:.0f} -> {after['rss_mib']:.0f} MiB "
        f"(peak {out['api_peak_rss_mib']:.0f}), threads {before['threads']:.0f} -> "
        f"{after['threads']:.0f}; pools at the end: {out['pools_at_end']}"
    )


def main() -> None:
    """Run and print (or dump JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each window")
    parser.add_argument("--docs", type=int, default=300, help="SciFact abstracts in B's collection")
    parser.add_argument("--file-mib", type=int, default=8, help="size of A's multipart files")
    parser.add_argument("--image-side", type=int, default=3000, help="A's page image, pixels")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--same-process",
        action="store_true",
        help="run A's clients as threads of B's process (the old method: they share its GIL)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out = run(
        args.seconds, args.docs, args.file_mib, args.image_side, args.timeout, args.same_process
    )
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        print_report(out)


if __name__ == "__main__":
    main()
