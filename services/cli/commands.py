"""Register the client commands (they talk to the Sieve API over HTTP) on the ``sieve`` app."""

from __future__ import annotations

import typer

from services.cli.admin_cmd import collections_app, jobs_app
from services.cli.ingest_cmd import ingest
from services.cli.query_cmd import query

__all__ = ["register_client_commands"]


def register_client_commands(app: typer.Typer) -> None:
    """Add ``ingest``, ``query``, ``collections`` and ``jobs`` to ``app``."""
    app.command(rich_help_panel="Client")(ingest)
    app.command(rich_help_panel="Client")(query)
    app.add_typer(collections_app, rich_help_panel="Client")
    app.add_typer(jobs_app, rich_help_panel="Client")
