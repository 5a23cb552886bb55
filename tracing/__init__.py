"""Spans for every stage, on the OpenTelemetry API only: below every stage, importing none.

Its own package (not ``core``, which stays stdlib + pydantic; not ``ingest``, which the
query path has no reason to import) so that each stage can open spans the same way.
"""

from tracing.spans import AttrValue, enable_spans, span, spans_enabled

__all__ = ["AttrValue", "enable_spans", "span", "spans_enabled"]
