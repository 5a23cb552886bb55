"""``sieve explain -c C QUERY --doc ID``: where each named document went in that query."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from services.cli.options import DEFAULT_URL, ApiKey, ApiUrl, open_client
from services.cli.reporting import one_line_errors, stdout

__all__ = ["explain"]


def explain(
    *,
    text: Annotated[str, typer.Argument(help="The question.", show_default=False)],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection to query.")],
    docs: Annotated[
        list[str] | None,
        typer.Option("--doc", help="A document to trace (repeat it); else the returned ones."),
    ] = None,
    top_n: Annotated[int | None, typer.Option(min=1, max=500, help="Results to return.")] = None,
    top_k: Annotated[
        int | None, typer.Option(min=1, max=500, help="Candidates to recall before reranking.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the traces as JSON.")] = False,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Trace documents through a query: each recall leg's rank, rerank, cut, final rank."""
    body: dict[str, Any] = {"query": text, "explain": True}
    if docs:
        body["explain_documents"] = docs
    body.update({k: v for k, v in {"top_n": top_n, "top_k": top_k}.items() if v is not None})
    with one_line_errors(), open_client(api_url, api_key) as client:
        raw = client.query_raw(collection, body)
    traces: list[dict[str, Any]] = raw.get("explain") or []
    if as_json:
        typer.echo(json.dumps(traces, indent=2, ensure_ascii=False))
        return
    from rich.table import Table  # noqa: PLC0415 - keep `sieve --help` fast
    from rich.text import Text  # noqa: PLC0415

    table = Table()
    for name, justify in (
        ("document", "left"), ("outcome", "left"), ("recall", "right"), ("dense", "right"),
        ("bm25", "right"), ("reranked", "right"), ("rerank", "right"), ("order", "right"),
        ("rank", "right"), ("note", "left"),
    ):  # fmt: skip
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for t in traces:
        score = t.get("rerank_score")
        table.add_row(
            Text(str(t["document_id"])),  # data, never rich markup
            str(t["outcome"]),
            *(_rank(t.get(k)) for k in ("recall_rank", "dense_rank", "sparse_rank")),
            "yes" if t.get("reranked") else "no",
            "—" if score is None else f"{score:.3f}",
            *(_rank(t.get(k)) for k in ("ordered_rank", "final_rank")),
            Text(str(t.get("note") or "")),
        )
    out = stdout()
    out.print(table)
    rerank = raw.get("rerank") or {}
    out.print(Text(f"rerank {rerank.get('status')} · {rerank.get('reason') or ''}", style="dim"))


def _rank(value: object) -> str:
    return "—" if value is None else str(value)
