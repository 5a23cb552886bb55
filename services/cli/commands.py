"""Register the client commands (they talk to the Sieve API over HTTP) on the ``sieve`` app."""

from __future__ import annotations

import typer

from services.cli.admin_cmd import collections_app, jobs_app
from services.cli.backup_cmd import backup, restore
from services.cli.explain_cmd import explain
from services.cli.ingest_cmd import ingest
from services.cli.mcp_cmd import mcp
from services.cli.query_cmd import query
from services.cli.query_log_cmd import query_log_app
from services.cli.webhooks_cmd import webhooks_app

__all__ = ["register_client_commands"]


def register_client_commands(app: typer.Typer) -> None:
    """Add ``ingest``, ``query``, ``explain``, ``collections``, ``jobs``, ``webhooks``,
    ``query-log``, ``backup``, ``restore`` and ``mcp``."""
    app.command(rich_help_panel="Client")(ingest)
    app.command(rich_help_panel="Client")(query)
    app.command(rich_help_panel="Client")(explain)
    app.add_typer(collections_app, rich_help_panel="Client")
    app.add_typer(jobs_app, rich_help_panel="Client")
    app.add_typer(webhooks_app, rich_help_panel="Client")
    app.add_typer(query_log_app, rich_help_panel="Client")
    app.command(rich_help_panel="Client")(backup)
    app.command(rich_help_panel="Client")(restore)
    app.command(rich_help_panel="Client")(mcp)
