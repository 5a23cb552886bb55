"""What a span costs: ``tracing.span`` off (the default) and on, against an empty
``with nullcontext()`` measured in the same run (the ratio is what to read).

Off runs first (no tracer provider), then the same loop with an SDK provider whose spans go
to an in-memory exporter through a SimpleSpanProcessor (the cost of recording, not of OTLP).

    .venv/bin/python -m bench.tracing --spans 200000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from contextlib import nullcontext

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bench.harness import machine_note, markdown_table
from tracing import enable_spans, span


def _per_call_ns(body: Callable[[], object], n: int, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            body()
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def _baseline() -> None:
    with nullcontext():
        pass


def _span() -> None:
    with span("query.embed", model="m", mode="hybrid"):
        pass


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200_000)
    args = parser.parse_args()
    base = _per_call_ns(_baseline, args.spans)
    off = _per_call_ns(_span, args.spans)
    asking = _per_call_ns(trace.get_tracer_provider, args.spans)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    enable_spans()

    def recorded() -> None:
        _span()
        exporter.clear()

    on = _per_call_ns(recorded, max(1, args.spans // 10), repeats=3)
    rows = [
        ["empty with nullcontext() (baseline)", f"{base:.0f}", "1.0"],
        ["span(), tracing off (default)", f"{off:.0f}", f"{off / base:.1f}"],
        ["(for scale) trace.get_tracer_provider()", f"{asking:.0f}", f"{asking / base:.1f}"],
        ["span(), tracing on, in-memory export", f"{on:.0f}", f"{on / base:.1f}"],
    ]
    print(markdown_table(["case", "ns per span", "x baseline"], rows))
    print(machine_note())


if __name__ == "__main__":
    main()
