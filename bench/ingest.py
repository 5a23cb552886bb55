"""Ingest benchmark: SciFact end to end through the embedded stack vs the hub's raw embedding rate.

    .venv/bin/python -m bench.ingest [--docs N] [--late] [--json]

The stack is started exactly as ``sieve up`` starts it (the supervisor: Redis with AOF, the
model hub, the API owning the Edge store, one prefork Celery worker), on free loopback ports
and a temporary data directory. The corpus is uploaded over HTTP as JSONL in batches of
2,000 lines and the jobs are polled until every document is terminal. The worker's process
tree is sampled for its peak RSS meanwhile.

Baseline, same run, same hub: the same chunk texts (chunked with the pipeline's tokenizer and
chunker settings) POSTed to ``/v1/embeddings`` packed like the embeddings client packs them
(64 items / 8,192 tokens per request), sequentially by one client, as fast as possible. Half
of the requests run before the ingest and half after it, so that load from other processes
on a shared machine falls on both sides. Target: end to end >= 80 % of the raw chunks/s.
A diagnostic row replays a sample with one request per document, the shape a worker that
embeds each document on its own sends (one request per document).

``--late`` then ingests the same corpus again, in the same run and stack, into a collection
created with ``late_interaction`` (a second, token-vector embedding pass and MaxSim
multivectors in the store) and reports its rate against the plain ingest's. Target: with
late interaction >= 45 % of the rate without it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.harness import SCIFACT_DIR, BenchStack, TreeSampler, code_state, markdown_table, pct
from core.settings import IngestSettings, ModelSettings
from ingest.chunker import ChunkerConfig, chunk_document
from ingest.documents import ExtractedDocument
from ingest.embeddings_client import pack_batches
from ingest.limits import IngestLimits
from ingest.records import record_to_document
from ingest.tokenizer import load_bge_small_tokenizer

UPLOAD_LINES = 2_000
COLLECTION = "scifact"
TARGET = 0.80
LATE_COLLECTION = "scifact-late"
LATE_TARGET = 0.45
POLL_S = 1.0


@dataclass(frozen=True)
class Corpus:
    """The uploaded JSONL lines and the pipeline's chunks of them."""

    lines: list[bytes]
    doc_chunks: list[list[str]]  # per document, in order
    doc_tokens: list[list[int]]  # tokens per chunk incl. [CLS]/[SEP], as the worker counts

    @property
    def chunks(self) -> int:
        return sum(len(c) for c in self.doc_chunks)


def load_corpus(docs: int | None) -> Corpus:
    """The first ``docs`` SciFact lines, chunked as ``DocumentPipeline.extract_and_chunk`` does."""
    lines: list[bytes] = []
    with (SCIFACT_DIR / "corpus.jsonl").open("rb") as fh:
        for line in fh:
            if line.strip():
                lines.append(line.rstrip(b"\n"))
                if docs is not None and len(lines) >= docs:
                    break
    return corpus_from_lines(lines)


def corpus_from_lines(lines: list[bytes]) -> Corpus:
    """BEIR JSONL lines chunked as ``DocumentPipeline.extract_and_chunk`` does."""
    settings = IngestSettings()
    config = ChunkerConfig(
        target_tokens=settings.chunk_tokens, overlap_tokens=settings.chunk_overlap
    )
    limits = IngestLimits(max_file_bytes=settings.max_file_bytes, max_pages=settings.max_pages)
    tokenizer = load_bge_small_tokenizer()
    doc_chunks, doc_tokens = [], []
    for n, line in enumerate(lines):
        doc = record_to_document(json.loads(line), f"jsonl:{n + 1}", limits)
        if not isinstance(doc, ExtractedDocument):
            raise SystemExit(f"line {n + 1} does not parse: {doc}")
        chunks = chunk_document(doc, tokenizer, config)
        doc_chunks.append([c.text for c in chunks])
        doc_tokens.append([c.token_count + 2 for c in chunks])
    return Corpus(lines, doc_chunks, doc_tokens)


@dataclass
class RawRun:
    """Sequential ``/v1/embeddings`` requests: how many chunks, requests and seconds."""

    chunks: int = 0
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] | None = None

    @property
    def rate(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0


def embed_sequentially(client: httpx.Client, model: str, batches: list[list[str]]) -> RawRun:
    """POST each batch in turn, one client, no pause; returns the totals."""
    run = RawRun(latencies=[])
    for texts in batches:
        start = time.perf_counter()
        resp = client.post(
            "/v1/embeddings", json={"model": model, "input": texts, "encoding_format": "float"}
        )
        resp.raise_for_status()
        elapsed = time.perf_counter() - start
        if len(resp.json()["data"]) != len(texts):
            raise SystemExit("the hub returned the wrong number of embeddings")
        run.chunks += len(texts)
        run.requests += 1
        run.seconds += elapsed
        assert run.latencies is not None
        run.latencies.append(elapsed)
    return run


def packed_batches(corpus: Corpus, settings: IngestSettings) -> list[list[str]]:
    """All chunks in document order, packed as ``EmbeddingsClient.embed`` packs a text list."""
    texts = [t for chunks in corpus.doc_chunks for t in chunks]
    counts = [n for tokens in corpus.doc_tokens for n in tokens]
    ranges = pack_batches(counts, settings.embed_batch_tokens, settings.embed_batch_items)
    return [[texts[i] for i in r] for r in ranges]


def per_document_batches(corpus: Corpus, settings: IngestSettings, docs: int) -> list[list[str]]:
    """The worker's real request shape: each document's chunks packed on their own."""
    out: list[list[str]] = []
    for texts, counts in zip(corpus.doc_chunks[:docs], corpus.doc_tokens[:docs], strict=True):
        ranges = pack_batches(counts, settings.embed_batch_tokens, settings.embed_batch_items)
        out.extend([texts[i] for i in r] for r in ranges)
    return out


@dataclass
class EndToEnd:
    """The ingest through the stack."""

    seconds: float
    upload_seconds: float
    states: dict[str, int]
    chunks: int
    errors: dict[str, int]
    worker_peak_rss: int
    worker_peak_single: int
    api_peak_rss: int
    storage_per_chunk: dict[str, Any] | None = None


def wait_jobs(api: httpx.Client, job_ids: list[str], stack: BenchStack, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(job_ids)
    while pending:
        stack.check_alive()
        job = api.get(f"/v1/jobs/{pending[0]}").raise_for_status().json()
        if job["state"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise SystemExit(f"job {pending[0]} still {job['state']}: {job['counts']}")
            time.sleep(POLL_S)
        else:
            pending.pop(0)


def ingest(
    stack: BenchStack,
    corpus: Corpus,
    timeout_s: float,
    *,
    collection: str = COLLECTION,
    late: bool = False,
) -> EndToEnd:
    """Upload every line in 2,000-line JSONL batches, then wait for every job to finish."""
    with httpx.Client(base_url=stack.api_url, timeout=300) as api:
        create = {"name": collection, "late_interaction": late}
        api.post("/v1/collections", json=create).raise_for_status()
        with (
            TreeSampler(stack.pid("worker")) as worker_rss,
            TreeSampler(stack.pid("api")) as api_rss,
        ):
            start = time.perf_counter()
            job_ids: list[str] = []
            for at in range(0, len(corpus.lines), UPLOAD_LINES):
                body = b"\n".join(corpus.lines[at : at + UPLOAD_LINES]) + b"\n"
                resp = api.post(
                    f"/v1/collections/{collection}/documents",
                    content=body,
                    headers={"Content-Type": "application/x-ndjson"},
                )
                resp.raise_for_status()
                accepted = resp.json()
                if accepted["failed"]:
                    raise SystemExit(f"the API refused records: {accepted['failed']}")
                job_ids.append(accepted["job_id"])
            uploaded = time.perf_counter() - start
            wait_jobs(api, job_ids, stack, timeout_s)
            seconds = time.perf_counter() - start
        states: dict[str, int] = {}
        errors: dict[str, int] = {}
        for job_id in job_ids:
            job = api.get(f"/v1/jobs/{job_id}").raise_for_status().json()
            for state, count in job["counts"].items():
                states[state] = states.get(state, 0) + count
            for err in job.get("errors", {}).values():
                code = err.get("code") or err.get("reason") or "error"
                errors[code] = errors.get(code, 0) + 1
        info = api.get(f"/v1/collections/{collection}").raise_for_status().json()
    return EndToEnd(
        seconds=seconds,
        upload_seconds=uploaded,
        states={k: v for k, v in states.items() if v},
        chunks=int(info["chunks"] or 0),
        errors=errors,
        worker_peak_rss=worker_rss.peak,
        worker_peak_single=worker_rss.peak_single,
        api_peak_rss=api_rss.peak,
        storage_per_chunk=info.get("storage_per_chunk"),
    )


def run(
    docs: int | None, per_doc_sample: int, timeout_s: float, *, late: bool = False
) -> dict[str, Any]:
    """Chunk, start the stack, baseline (first half), ingest, baseline (second half)."""
    settings = IngestSettings()
    model = ModelSettings().embedding_model
    code = code_state()  # at the start: others commit in this tree while it runs
    t0 = time.perf_counter()
    corpus = load_corpus(docs)
    print(
        f"{len(corpus.lines):,} documents -> {corpus.chunks:,} chunks "
        f"(chunked in {time.perf_counter() - t0:.1f} s)",
        flush=True,
    )
    batches = packed_batches(corpus, settings)
    half = len(batches) // 2
    with BenchStack.running("ingest") as stack:
        env = stack.env()
        with httpx.Client(base_url=stack.hub_url, timeout=300) as hub:
            embed_sequentially(hub, model, batches[:1])  # warm-up, not counted
            print(f"raw baseline, first half ({half} requests) ...", flush=True)
            raw_a = embed_sequentially(hub, model, batches[:half])
            print("end to end ...", flush=True)
            e2e = ingest(stack, corpus, timeout_s)
            print(f"raw baseline, second half ({len(batches) - half} requests) ...", flush=True)
            raw_b = embed_sequentially(hub, model, batches[half:])
            sample = per_document_batches(corpus, settings, per_doc_sample)
            per_doc = embed_sequentially(hub, model, sample) if sample else RawRun()
            e2e_late = None
            if late:
                print("end to end with late interaction ...", flush=True)
                e2e_late = ingest(stack, corpus, timeout_s, collection=LATE_COLLECTION, late=True)
    raw = RawRun(
        chunks=raw_a.chunks + raw_b.chunks,
        requests=raw_a.requests + raw_b.requests,
        seconds=raw_a.seconds + raw_b.seconds,
        latencies=(raw_a.latencies or []) + (raw_b.latencies or []),
    )
    return {
        "documents": len(corpus.lines),
        "chunks_expected": corpus.chunks,
        "config": {
            "SIEVE_MODEL_REQUESTS_PER_SECOND": env.get(
                "SIEVE_MODEL_REQUESTS_PER_SECOND", f"(unset: {ModelSettings().requests_per_second})"
            ),
            "embed_batch_items": settings.embed_batch_items,
            "embed_batch_tokens": settings.embed_batch_tokens,
            "chunk_tokens": settings.chunk_tokens,
            "chunk_overlap": settings.chunk_overlap,
            "worker_concurrency": stack.config.workers,
        },
        "e2e": {
            "seconds": e2e.seconds,
            "upload_seconds": e2e.upload_seconds,
            "docs_per_s": len(corpus.lines) / e2e.seconds,
            "chunks": e2e.chunks,
            "chunks_per_s": e2e.chunks / e2e.seconds,
            "states": e2e.states,
            "errors": e2e.errors,
            "worker_peak_rss_mib": e2e.worker_peak_rss / 2**20,
            "worker_peak_single_rss_mib": e2e.worker_peak_single / 2**20,
            "api_peak_rss_mib": e2e.api_peak_rss / 2**20,
        },
        "raw": _raw_summary(raw, "packed"),
        "raw_halves_chunks_per_s": [raw_a.rate, raw_b.rate],
        "raw_per_document": _raw_summary(per_doc, f"first {per_doc_sample} docs"),
        "ratio": (e2e.chunks / e2e.seconds) / raw.rate if raw.rate else 0.0,
        "late": None if e2e_late is None else _late_summary(e2e, e2e_late),
        "target": TARGET,
        "code": code,
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }


def _late_summary(plain: EndToEnd, late: EndToEnd) -> dict[str, Any]:
    rate = late.chunks / late.seconds
    return {
        "seconds": late.seconds,
        "chunks": late.chunks,
        "chunks_per_s": rate,
        "states": late.states,
        "errors": late.errors,
        "ratio_to_plain": rate / (plain.chunks / plain.seconds),
        "target": LATE_TARGET,
        "worker_peak_rss_mib": late.worker_peak_rss / 2**20,
        "api_peak_rss_mib": late.api_peak_rss / 2**20,
        "storage_per_chunk": late.storage_per_chunk,
    }


def render_late(late: dict[str, Any], plain_rate: float) -> str:
    """The late-interaction rows: its ingest against the plain ingest of the same run."""
    met = "met" if late["ratio_to_plain"] >= late["target"] else "MISSED"
    storage = late["storage_per_chunk"] or {}
    rows = [
        [
            "chunks/s",
            f"{plain_rate:,.2f}",
            f"{late['chunks_per_s']:,.2f}",
            f"{late['ratio_to_plain']:.1%} (target ≥ {late['target']:.0%}: {met})",
        ],
        ["wall s", "", f"{late['seconds']:,.1f}", ""],
        [
            "token vectors per chunk; bytes float32 / int8",
            "",
            f"{storage.get('late_tokens')}; {storage.get('late_bytes_float32'):,} / "
            f"{storage.get('late_bytes_int8'):,}",
            "",
        ],
        [
            "worker / API peak RSS MiB",
            "",
            f"{late['worker_peak_rss_mib']:,.0f} / {late['api_peak_rss_mib']:,.0f}",
            "",
        ],
    ]
    return "\n".join(
        [
            "\n#### With late interaction (same corpus, same run)\n",
            markdown_table(["metric", "plain", "late interaction", "late / plain"], rows),
            f"\ndocument states: {late['states']}; errors: {late['errors'] or 'none'}",
        ]
    )


def _raw_summary(run: RawRun, shape: str) -> dict[str, Any]:
    lat = [s * 1000 for s in run.latencies or []]
    return {
        "shape": shape,
        "chunks": run.chunks,
        "requests": run.requests,
        "seconds": run.seconds,
        "chunks_per_s": run.rate,
        "items_per_request": run.chunks / run.requests if run.requests else 0.0,
        "request_ms_p50": pct(lat, 50) if lat else None,
        "request_ms_p95": pct(lat, 95) if lat else None,
    }


def render(r: dict[str, Any]) -> str:
    """The markdown report."""
    e2e, raw, per_doc = r["e2e"], r["raw"], r["raw_per_document"]
    met = "met" if r["ratio"] >= r["target"] else "MISSED"
    halves = ", ".join(f"{x:,.1f}" for x in r["raw_halves_chunks_per_s"])
    rows = [
        ["end to end: documents/s", f"{e2e['docs_per_s']:,.2f}", "", ""],
        [
            "end to end: chunks/s",
            f"{e2e['chunks_per_s']:,.2f}",
            f"{raw['chunks_per_s']:,.2f}",
            f"{r['ratio']:.1%} (target ≥ {r['target']:.0%}: {met})",
        ],
        [
            "end to end: wall s (upload part)",
            f"{e2e['seconds']:,.1f} ({e2e['upload_seconds']:.1f})",
            f"{raw['seconds']:,.1f}",
            "",
        ],
        [
            "chunks indexed / expected",
            f"{e2e['chunks']:,} / {r['chunks_expected']:,}",
            f"{raw['chunks']:,}",
            "",
        ],
        [
            "embedding requests (items each)",
            "",
            f"{raw['requests']:,} ({raw['items_per_request']:.1f})",
            "",
        ],
        [
            "raw request ms p50 / p95",
            "",
            f"{raw['request_ms_p50']:,.0f} / {raw['request_ms_p95']:,.0f}",
            "",
        ],
        [
            f"diagnostic: one request per document ({per_doc['shape']})",
            "",
            f"{per_doc['chunks_per_s']:,.2f} chunks/s, {per_doc['items_per_request']:.1f} items, "
            f"p50 {per_doc['request_ms_p50'] or 0:,.0f} ms",
            "",
        ],
        [
            "worker tree peak RSS MiB (largest process)",
            f"{e2e['worker_peak_rss_mib']:,.0f} ({e2e['worker_peak_single_rss_mib']:,.0f})",
            "",
            "",
        ],
        ["API process peak RSS MiB", f"{e2e['api_peak_rss_mib']:,.0f}", "", ""],
    ]
    cfg = ", ".join(f"{k}={v}" for k, v in r["config"].items())
    late = "" if not r.get("late") else render_late(r["late"], e2e["chunks_per_s"])
    return "\n".join(
        [
            f"\n### Ingest: SciFact, {r['documents']:,} documents ({r['cpus']} CPUs, load average "
            f"{r['load_average']:.1f} at the end)\n",
            markdown_table(["metric", "end to end", "raw hub baseline", "e2e / raw"], rows),
            f"\ndocument states: {r['e2e']['states']}; errors: {r['e2e']['errors'] or 'none'}",
            f"raw baseline halves (before / after the ingest), chunks/s: {halves}",
            f"stack config: {cfg}",
            f"code: {r['code']}",
            late,
        ]
    )


def main() -> None:
    """Parse options, run, print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", type=int, default=None, help="first N documents (default all)")
    parser.add_argument(
        "--per-doc-sample", type=int, default=300, help="documents replayed one request each"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for jobs")
    parser.add_argument(
        "--late", action="store_true", help="also ingest with late interaction and compare"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    result = run(args.docs, args.per_doc_sample, args.timeout, late=args.late)
    print(json.dumps(result, indent=2) if args.json else render(result))


if __name__ == "__main__":
    main()
