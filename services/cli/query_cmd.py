"""``sieve query``: ranked, cited passages as a table, with the rerank stage's status always
shown below it (or the raw response with ``--json``)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.cli.options import DEFAULT_URL, ApiKey, ApiUrl, open_client
from services.cli.reporting import one_line_errors, stdout

if TYPE_CHECKING:
    from rich.console import RenderableType

    from services.api.schemas_query import QueryResponse

__all__ = ["FinalScore", "Mode", "query", "query_body", "rerank_line", "snippet"]

SNIPPET_CHARS = 100


class Mode(StrEnum):
    """Recall mode."""

    HYBRID = "hybrid"
    DENSE = "dense"
    SPARSE = "sparse"


class FinalScore(StrEnum):
    """What the final score is."""

    RERANK = "rerank"
    FUSION = "fusion"


def query_body(
    text: str,
    *,
    top_n: int | None = None,
    top_k: int | None = None,
    min_score: float | None = None,
    mode: Mode = Mode.HYBRID,
    rerank: bool = True,
    final: FinalScore | None = None,
) -> dict[str, Any]:
    """The ``POST /v1/collections/{name}/query`` body; unset options are left to the server."""
    body: dict[str, Any] = {"query": text, "mode": mode.value, "rerank": rerank}
    optional = {
        "top_n": top_n,
        "top_k": top_k,
        "min_score": min_score,
        "final": final.value if final else None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def snippet(text: str, width: int = SNIPPET_CHARS) -> str:
    """The first ``width`` characters of ``text`` with whitespace collapsed."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def rerank_line(resp: QueryResponse) -> tuple[str, bool]:
    """One line on what the rerank stage did and the timings; True when it is not ``ok``."""
    rr = resp.rerank
    parts = [f"rerank {rr.status}" if rr.status == "ok" else f"rerank {rr.status.upper()}"]
    if rr.reason:
        parts.append(rr.reason)
    if rr.model:
        parts.append(rr.model)
    detail = f"{rr.candidates} candidates"
    if rr.min_score is not None:
        detail += f", {rr.dropped_by_cutoff} below min score {rr.min_score:g}"
    parts += [detail, f"final score: {rr.final}"]
    t = resp.timings_ms
    stages = ", ".join(f"{k} {v:.0f}" for k, v in t.items() if k != "total")
    total = t.get("total")
    parts.append(f"{total:.0f} ms ({stages})" if total is not None else stages)
    return " · ".join(p for p in parts if p), rr.status != "ok"


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _table(resp: QueryResponse) -> RenderableType:
    from rich.table import Table  # noqa: PLC0415 - keep `sieve --help` fast
    from rich.text import Text  # noqa: PLC0415

    table = Table()
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("rerank", justify="right")
    table.add_column("source", overflow="fold")
    table.add_column("page", justify="right")
    table.add_column("snippet", overflow="fold", ratio=1)
    for hit in resp.results:
        table.add_row(
            str(hit.rank),
            _score(hit.scores.final),
            _score(hit.scores.rerank),
            # Passage text and names are data, never rich markup.
            Text(hit.source or hit.document_id),
            "" if hit.page is None else str(hit.page),
            Text(snippet(hit.text)),
        )
    return table


def query(
    *,
    text: Annotated[str, typer.Argument(help="The question.", show_default=False)],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection to query.")],
    top_n: Annotated[
        int | None, typer.Option(min=1, max=500, help="Results to return (server default).")
    ] = None,
    top_k: Annotated[
        int | None, typer.Option(min=1, max=500, help="Candidates to recall before reranking.")
    ] = None,
    min_score: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Drop results whose rerank score is below this."),
    ] = None,
    mode: Annotated[Mode, typer.Option(help="Recall mode.")] = Mode.HYBRID,
    rerank: Annotated[
        bool, typer.Option("--rerank/--no-rerank", help="Rerank the recalled candidates.")
    ] = True,
    final: Annotated[
        FinalScore | None,
        typer.Option(help="Final score: the reranker's, or fused with the recall rank."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw response JSON.")] = False,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Query a collection: hybrid recall, rerank, cutoff; a table of cited passages."""
    body = query_body(
        text, top_n=top_n, top_k=top_k, min_score=min_score, mode=mode, rerank=rerank, final=final
    )
    with one_line_errors(), open_client(api_url, api_key) as client:
        from rich.text import Text  # noqa: PLC0415 - keep `sieve --help` fast

        from services.api.schemas_query import QueryResponse  # noqa: PLC0415

        raw = client.query_raw(collection, body)
        if as_json:
            typer.echo(json.dumps(raw, indent=2, ensure_ascii=False))
            return
        resp = QueryResponse.model_validate(raw)
        out = stdout()
        if resp.results:
            out.print(_table(resp))
        else:
            out.print("no results" + (" above the cutoff" if resp.rerank.min_score else ""))
        line, alert = rerank_line(resp)
        out.print(Text(line, style="bold yellow" if alert else "dim"))
