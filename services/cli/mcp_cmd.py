"""The ``sieve mcp`` command."""

from __future__ import annotations

from typing import Annotated

import typer

from services.cli.options import DEFAULT_URL, ApiKey, ApiUrl

__all__ = ["mcp"]


def mcp(
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
    collection: Annotated[
        str | None,
        typer.Option("--collection", "-c", help="The collection `search` uses when none is named."),
    ] = None,
) -> None:
    """Serve MCP over stdio: tools `search` and `list_collections` for agents (Claude, ...)."""
    import anyio  # noqa: PLC0415 - keep `sieve --help` fast

    from services.cli.mcp_server import serve_stdio  # noqa: PLC0415

    anyio.run(lambda: serve_stdio(api_url, api_key or None, default_collection=collection))
