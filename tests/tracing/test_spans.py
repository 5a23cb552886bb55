"""``tracing.span``: a shared no-op until spans are enabled, real nested spans after.
Each case runs in a fresh interpreter: a tracer provider is process-global."""

from __future__ import annotations

import subprocess
import sys
import textwrap

OFF = """
from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider
from tracing import span

# Even with a provider installed, spans stay off until the composition root enables them.
trace.set_tracer_provider(TracerProvider())

before = context.get_current()
first, second = span("a", x=1), span("b")
assert first is second, "the disabled path allocates nothing per call"
with first as s:
    assert not s.is_recording()
    assert context.get_current() is before, "the disabled path leaves the context alone"
print("off-ok")
"""

ON = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tracing import enable_spans, span

enable_spans()
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
try:
    with span("outer", collection="kb", skipped=None, names=["a", "b"]) as outer:
        with span("inner") as inner:
            inner.set_attribute("chunks", 3)
            raise ValueError("boom")
except ValueError:
    pass
inner_span, outer_span = exporter.get_finished_spans()
assert (inner_span.name, outer_span.name) == ("inner", "outer")
assert inner_span.parent.span_id == outer_span.context.span_id
assert dict(outer_span.attributes) == {"collection": "kb", "names": ("a", "b")}
assert inner_span.attributes["chunks"] == 3
assert inner_span.status.status_code.name == "ERROR"
assert inner_span.events[0].name == "exception"
print("on-ok")
"""


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_off_by_default_costs_no_span_and_no_context_change() -> None:
    assert _run(OFF) == "off-ok"


def test_on_nests_spans_drops_none_attributes_and_records_errors() -> None:
    assert _run(ON) == "on-ok"
