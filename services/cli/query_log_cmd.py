"""``sieve query-log enable|disable|show``: a collection's opt-in query log.

What it keeps feeds ``sieve tune -c C --judge MODEL --from-query-log``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from services.cli.options import DEFAULT_URL, ApiKey, ApiUrl, Collection, open_client
from services.cli.reporting import one_line_errors, stdout

__all__ = ["query_log_app"]

query_log_app = typer.Typer(
    name="query-log",
    help="Keep a sample of a collection's queries, to tune it from how it is really used.",
    no_args_is_help=True,
)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@query_log_app.command("enable")
def enable(
    *,
    collection: Collection,
    sample_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of the queries kept.")
    ] = 1.0,
    max_entries: Annotated[
        int | None,
        typer.Option(min=1, help="Distinct queries kept (default: the server's)."),
    ] = None,
    ttl_s: Annotated[
        int | None,
        typer.Option(min=1, help="Seconds a query is kept after it was last seen."),
    ] = None,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Turn the collection's query log on (or change its sample rate and bounds)."""
    with one_line_errors(), open_client(api_url, api_key) as client:
        out = client.enable_query_log(
            collection, sample_rate=sample_rate, max_entries=max_entries, ttl_s=ttl_s
        )
        cfg = out.config
        if cfg is None:  # not what a PUT answers; say what the server said, guess nothing
            stdout().print(f"query log of {collection}: the server reports it off")
            return
        stdout().print(
            f"query log of {collection} on: {cfg.sample_rate:g} of the queries, at most "
            f"{cfg.max_entries} kept for {cfg.ttl_s} s after last seen ({out.entries} held)"
        )


@query_log_app.command("disable")
def disable(
    *, collection: Collection, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None
) -> None:
    """Turn the collection's query log off and drop what it kept."""
    with one_line_errors(), open_client(api_url, api_key) as client:
        client.disable_query_log(collection)
        stdout().print(f"query log of {collection} off (its entries are dropped)")


@query_log_app.command("show")
def show(
    *,
    collection: Collection,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many (most recent first).")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many to show.")] = 20,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Show the config and the most recently seen queries."""
    with one_line_errors(), open_client(api_url, api_key) as client:
        from rich.table import Table  # noqa: PLC0415 - keep `sieve --help` fast
        from rich.text import Text  # noqa: PLC0415

        state = client.get_query_log(collection)
        out = stdout()
        if state.config is None:
            out.print(f"query log of {collection} is off; `sieve query-log enable -c ...`")
            return
        cfg = state.config
        page = client.list_query_log(collection, offset=offset, limit=limit)
        table = Table(
            title=f"{page.total} queries kept (sample {cfg.sample_rate:g}, at most "
            f"{cfg.max_entries}, {cfg.ttl_s} s)",
            title_justify="left",
        )
        for column in ("last seen", "seen", "top_k", "query"):
            table.add_column(column, overflow="fold")
        for e in page.entries:
            top_k = "" if e.top_k is None else str(e.top_k)
            table.add_row(_when(e.last_at), str(e.count), top_k, Text(e.query))
        out.print(table)
