"""Benchmark: the local model hub over HTTP vs a raw onnxruntime session, same inputs, same run.

    .venv/bin/python -m bench.modelhub [--repeats 10] [--clients 8]

Rerank: 1 query x 50 passages (~130 tokens each). Embed: 256 short passages. Each is timed
through the hub (a ``sieve modelhub`` subprocess on a free loopback port, httpx, keep-alive)
and through a raw session (default onnxruntime threading, one padded batch per request,
tokenization included). Then 8 concurrent clients hit the hub. The hub's RSS is sampled
throughout; its peak is reported.

First, in-process and on the same inputs: each bundled model opened from its shipped graph
and from the hub's offline-optimised cached graph (``graph_cache.optimized_graph``), with the
hub's session options (one intra-op thread), run alternately in the hub's batch shape
(length-sorted, <= 4,096 padded tokens); the table gives both rates, their ratio, the time to
open each session and the largest score difference.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import psutil
from tokenizers import Tokenizer

from bench.harness import markdown_table
from core.net import free_port
from core.settings import ModelHubSettings
from services.modelhub.graph_cache import optimized_graph
from services.modelhub.onnx_models import OnnxCrossEncoder, OnnxEmbedder, TokenSeq
from services.modelhub.registry import (
    BUNDLED_EMBED_ID,
    BUNDLED_RERANK_ID,
    bundled_data_dir,
    bundled_models,
)

WORDS = [
    "retrieval",
    "ranking",
    "passage",
    "query",
    "model",
    "vector",
    "index",
    "search",
    "document",
    "relevance",
    "score",
    "token",
    "batch",
    "latency",
    "throughput",
    "memory",
    "cache",
    "server",
    "client",
    "request",
    "response",
    "network",
    "storage",
    "cluster",
    "replica",
    "shard",
    "engine",
    "language",
    "sentence",
    "meaning",
    "context",
    "window",
    "budget",
    "image",
    "text",
    "table",
    "figure",
    "chapter",
    "section",
    "paper",
    "result",
    "method",
    "experiment",
    "baseline",
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "for",
    "with",
    "on",
    "by",
    "from",
    "that",
    "this",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "it",
    "as",
]
QUERY = "how does the reranker score passages for a search query"


@dataclass
class Row:
    case: str
    mode: str
    hub: float
    raw: float
    unit: str

    def cells(self) -> list[str]:
        if self.unit == "ms":  # latency: the hub may be at most 10 % slower
            delta, met = self.hub / self.raw - 1, self.hub <= 1.10 * self.raw
            target = "≤ +10 %"
        else:  # throughput under load: at least the raw sequential rate
            delta, met = self.hub / self.raw - 1, self.hub >= self.raw
            target = "≥ raw"
        return [
            self.case,
            self.mode,
            f"{self.raw:.1f}",
            f"{self.hub:.1f}",
            self.unit,
            f"{delta * 100:+.1f} %",
            f"{target} {'met' if met else 'MISSED'}",
        ]


def passages(tok: Tokenizer, n: int, tokens: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words: list[str] = []
        while len(tok.encode(" ".join(words), add_special_tokens=False).ids) < tokens:
            words.extend(rng.choices(WORDS, k=8))
        out.append(" ".join(words) + ".")
    return out


class RawSession:
    """What a caller would write without the hub: tokenize, pad to the longest, run once."""

    def __init__(self, directory: Path) -> None:
        self.tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.no_truncation()
        self.session = ort.InferenceSession(
            str(directory / "model.onnx"), providers=["CPUExecutionProvider"]
        )

    def _run(self, encs: list[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            types[i, : len(e.ids)] = e.type_ids
            mask[i, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        out: np.ndarray = self.session.run(None, feed)[0]
        return out

    def rerank(self, query: str, docs: list[str]) -> np.ndarray:
        return self._run(self.tok.encode_batch([(query, d) for d in docs]))[:, 0]

    def embed(self, texts: list[str]) -> np.ndarray:
        cls = self._run(self.tok.encode_batch(texts))[:, 0, :]
        out: np.ndarray = cls / np.linalg.norm(cls, axis=1, keepdims=True)
        return out


def timed_pair(
    a: Callable[[], object], b: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median ms of ``a`` and of ``b``, run alternately so that machine noise hits both."""
    a()
    b()  # warm-up
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((a, samples[0]), (b, samples[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(samples[0]) * 1000, statistics.median(samples[1]) * 1000


def concurrent_rate(fn: Callable[[], object], clients: int, per_client: int) -> float:
    """Requests per second with ``clients`` threads each doing ``per_client`` calls."""
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda _: fn(), range(clients)))  # warm-up, one each
        start = time.perf_counter()
        futures = [pool.submit(fn) for _ in range(clients * per_client)]
        for f in futures:
            f.result()
        return clients * per_client / (time.perf_counter() - start)


def sequential_rate(fn: Callable[[], object], calls: int) -> float:
    """Calls per second, one after another."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return calls / (time.perf_counter() - start)


def start_hub(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SIEVE_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", "modelhub", "--port", str(port)], env=env
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the hub did not start")


def hub_batches(rows: list[TokenSeq], max_tokens: int) -> list[list[TokenSeq]]:
    """Length-sorted batches of at most ``max_tokens`` padded tokens, as the hub forms them."""
    batches: list[list[TokenSeq]] = []
    current: list[TokenSeq] = []
    for row in sorted(rows, key=lambda r: len(r.ids)):
        if current and (len(current) + 1) * len(row.ids) > max_tokens:
            batches.append(current)
            current = []
        current.append(row)
    return [*batches, current] if current else batches


def timed_open(fn: Callable[[], object], repeats: int = 3) -> float:
    """Median ms to build a session (tokenizer included)."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def graph_table(docs: list[str], short: list[str], repeats: int) -> list[list[str]]:
    """Shipped vs optimised graph, same inputs, same session options, alternating."""
    specs = {spec.id: spec for spec in bundled_models()}
    max_tokens = ModelHubSettings().max_batch_tokens
    out: list[list[str]] = []
    with tempfile.TemporaryDirectory() as cache:
        cache_dir = Path(cache)
        for model_id, cls, unit, items in (
            (BUNDLED_EMBED_ID, OnnxEmbedder, "texts/s", len(short)),
            (BUNDLED_RERANK_ID, OnnxCrossEncoder, "pairs/s", len(docs)),
        ):
            spec = specs[model_id]
            start = time.perf_counter()
            optimized_graph(spec.path / "model.onnx", cache_dir)
            build_ms = (time.perf_counter() - start) * 1000
            shipped = cls(spec, intra_op_threads=1)
            fast = cls(spec, intra_op_threads=1, graph_cache_dir=cache_dir)
            open_a = timed_open(lambda: cls(spec, intra_op_threads=1))  # noqa: B023
            open_b = timed_open(
                lambda: cls(spec, intra_op_threads=1, graph_cache_dir=cache_dir)  # noqa: B023
            )
            if cls is OnnxEmbedder:
                rows = [shipped.finish(e) for e in shipped.encode(short)]
            else:
                query = shipped.encode([QUERY])[0]
                rows = [shipped.finish(query, e) for e in shipped.encode(docs)]
            batches = hub_batches(rows, max_tokens)

            def run(model: OnnxEmbedder | OnnxCrossEncoder) -> np.ndarray:
                return np.concatenate([model.run(b) for b in batches])  # noqa: B023

            a, b = run(shipped), run(fast)
            if cls is OnnxEmbedder:
                diff = f"min cosine {float(np.min(np.sum(a * b, axis=1))):.6f}"
            else:
                diff = f"max abs logit diff {float(np.max(np.abs(a - b))):.4f}"
            ms_a, ms_b = timed_pair(lambda: run(shipped), lambda: run(fast), repeats)  # noqa: B023
            rate_a, rate_b = items / ms_a * 1000, items / ms_b * 1000
            out.append(
                [
                    model_id,
                    f"{rate_a:.1f}",
                    f"{rate_b:.1f}",
                    unit,
                    f"{rate_b / rate_a:.2f}x",
                    f"{open_a:.0f} / {open_b:.0f} (build {build_ms:.0f})",
                    diff,
                ]
            )
    return out


def main() -> None:
    """Run the benchmark and print markdown tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--encoding", choices=["float", "base64"], default="float")
    parser.add_argument("--graphs-only", action="store_true", help="only the graph table")
    args = parser.parse_args()

    data = bundled_data_dir()
    raw_rerank = RawSession(data / "reranker_en")
    raw_embed = RawSession(data / "bge_small_en")
    docs = passages(raw_rerank.tok, 50, 130, seed=1)
    short = passages(raw_embed.tok, 256, 14, seed=2)
    doc_tokens = statistics.mean(len(raw_rerank.tok.encode(d).ids) - 2 for d in docs)
    short_tokens = statistics.mean(len(raw_embed.tok.encode(s).ids) - 2 for s in short)

    graphs = graph_table(docs, short, args.repeats)
    print(
        f"\nShipped vs optimised graph (onnxruntime {ort.__version__}, 1 intra-op thread, "
        f"hub batch shape, median of {args.repeats} alternating runs, load average "
        f"{os.getloadavg()[0]:.1f})\n"
    )
    print(
        markdown_table(
            [
                "model",
                "shipped",
                "optimised",
                "unit",
                "optimised / shipped",
                "open ms shipped / optimised",
                "scores",
            ],
            graphs,
        )
    )
    if args.graphs_only:
        return

    port = free_port()
    hub = start_hub(port)
    proc = psutil.Process(hub.pid)
    peak = [proc.memory_info().rss]
    loaded_rss = peak[0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    local = threading.local()
    phase_peak: dict[str, int] = {}

    def http() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        client: httpx.Client = local.client
        return client

    rerank_body = {
        "model": BUNDLED_RERANK_ID,
        "query": QUERY,
        "documents": docs,
        "return_documents": False,
    }
    embed_body = {"model": BUNDLED_EMBED_ID, "input": short, "encoding_format": args.encoding}

    def hub_rerank() -> None:
        http().post("/v1/rerank", json=rerank_body).raise_for_status()

    def hub_embed() -> None:
        http().post("/v1/embeddings", json=embed_body).raise_for_status()

    try:
        # Same inputs, same answers: the hub is the raw model behind HTTP.
        got = http().post("/v1/rerank", json={**rerank_body, "raw_scores": True}).json()
        hub_scores = np.array(
            [r["relevance_score"] for r in sorted(got["results"], key=lambda r: r["index"])]
        )
        max_diff = float(np.max(np.abs(hub_scores - raw_rerank.rerank(QUERY, docs))))

        rows = []
        for case, hub_fn, raw_fn, items in (
            ("rerank 1x50", hub_rerank, lambda: raw_rerank.rerank(QUERY, docs), 50),
            ("embed 256", hub_embed, lambda: raw_embed.embed(short), 256),
        ):
            hub_ms, raw_ms = timed_pair(hub_fn, raw_fn, args.repeats)
            rows.append(Row(case, "1 request, median latency", hub_ms, raw_ms, "ms"))
            # Alternate hub bursts with raw sequential blocks, so that load from other
            # processes on a shared machine falls on both sides.
            hub_rates, raw_rates = [], []
            for _ in range(args.rounds):
                hub_rates.append(concurrent_rate(hub_fn, args.clients, args.per_client) * items)
                raw_rates.append(sequential_rate(raw_fn, args.clients) * items)
            hub_rate, raw_rate = statistics.median(hub_rates), statistics.median(raw_rates)
            phase_peak[case] = peak[0]
            unit = "pairs/s" if case.startswith("rerank") else "texts/s"
            rows.append(
                Row(case, f"{args.clients} clients vs raw sequential", hub_rate, raw_rate, unit)
            )
    finally:
        stop.set()
        sampler.join()
        hub.terminate()
        hub.wait(timeout=15)

    cpus = os.cpu_count()
    print(
        f"\nModel hub vs raw onnxruntime — {cpus} CPUs, onnxruntime {ort.__version__}, "
        f"embeddings as {args.encoding}, passages ~{doc_tokens:.0f} tokens, "
        f"short texts ~{short_tokens:.0f} tokens, repeats {args.repeats}, "
        f"load average at the end {os.getloadavg()[0]:.1f}\n"
    )
    print("| case | mode | raw | hub | unit | hub vs raw | target |")
    print("|---|---|---:|---:|---|---:|---|")
    for row in rows:
        print("| " + " | ".join(row.cells()) + " |")
    rss_met = "met" if peak[0] <= 700 * 2**20 else "MISSED"
    phases = ", ".join(f"{case} {rss / 2**20:.0f} MiB" for case, rss in phase_peak.items())
    print(
        f"\nhub RSS: {loaded_rss / 2**20:.0f} MiB with both models loaded; peak "
        f"{peak[0] / 2**20:.0f} MiB under load (target ≤ 700 MB: {rss_met}); "
        f"peak after each case: {phases}"
    )
    print(f"max |hub logit - raw logit| over the 50 pairs: {max_diff:.3f}")


if __name__ == "__main__":
    main()
