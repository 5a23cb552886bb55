"""``sieve webhooks add|list|rm|deliveries``: a collection's webhook subscriptions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from services.cli.options import DEFAULT_URL, ApiKey, ApiUrl, Collection, open_client
from services.cli.reporting import one_line_errors, stdout

__all__ = ["webhooks_app"]

webhooks_app = typer.Typer(
    name="webhooks",
    help="Subscribe URLs to a collection's events (signed per Standard Webhooks).",
    no_args_is_help=True,
)

WebhookId = Annotated[
    str, typer.Argument(metavar="ID", help="Webhook id (wh_...).", show_default=False)
]


def _when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@webhooks_app.command("add")
def add_webhook(
    *,
    url: Annotated[str, typer.Argument(help="Target URL (http or https).", show_default=False)],
    collection: Collection,
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            "-e",
            help="Event to send (repeat for several; default: all). One of job.completed, "
            "job.failed, job.cancelled, document.failed, reindex.completed, snapshot.completed.",
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="A note for you.")] = "",
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Subscribe URL; prints the signing secret, which is shown only this once."""
    with one_line_errors(), open_client(api_url, api_key) as client:
        hook = client.create_webhook(collection, url, events=event, description=description)
        out = stdout()
        out.print(f"webhook {hook.id} for {', '.join(hook.events)}")
        out.print(f"secret {hook.secret}  (shown once: verify signatures with it)")


@webhooks_app.command("list")
def list_webhooks(
    *, collection: Collection, api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None
) -> None:
    """List the collection's subscriptions."""
    with one_line_errors(), open_client(api_url, api_key) as client:
        from rich.table import Table  # noqa: PLC0415 - keep `sieve --help` fast
        from rich.text import Text  # noqa: PLC0415

        hooks = client.list_webhooks(collection)
        out = stdout()
        if not hooks:
            out.print(f"no webhooks on {collection}; add one with `sieve webhooks add URL -c ...`")
            return
        table = Table()
        for column in ("id", "url", "events", "description", "created"):
            table.add_column(column, overflow="fold")
        for h in hooks:
            table.add_row(
                h.id, Text(h.url), ", ".join(h.events), Text(h.description), _when(h.created_at)
            )
        out.print(table)


@webhooks_app.command("rm")
def remove_webhook(
    *,
    webhook_id: WebhookId,
    collection: Collection,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Remove a subscription (deliveries still queued for it are dropped)."""
    with one_line_errors(), open_client(api_url, api_key) as client:
        client.delete_webhook(collection, webhook_id)
        stdout().print(f"removed webhook {webhook_id}")


@webhooks_app.command("deliveries")
def list_deliveries(
    *,
    webhook_id: WebhookId,
    collection: Collection,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many (newest first).")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many to show.")] = 20,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Show a subscription's delivery attempts, newest first."""
    with one_line_errors(), open_client(api_url, api_key) as client:
        from rich.table import Table  # noqa: PLC0415 - keep `sieve --help` fast

        page = client.list_webhook_deliveries(collection, webhook_id, offset=offset, limit=limit)
        table = Table(title=f"{page.total} attempts kept", title_justify="left")
        for column in ("at", "event", "message id", "attempt", "status", "http", "error", "ms"):
            table.add_column(column, overflow="fold")
        for d in page.deliveries:
            table.add_row(
                _when(d.get("at")),
                str(d.get("type", "")),
                str(d.get("webhook_id", "")),
                str(d.get("attempt", "")),
                str(d.get("status", "")),
                "" if d.get("http_status") is None else str(d["http_status"]),
                str(d.get("error") or ""),
                "" if d.get("duration_ms") is None else f"{d['duration_ms']:g}",
            )
        stdout().print(table)
