"""Options every client command shares (where the API is, which key), and opening a client.

Kept free of httpx and rich at import time so ``sieve --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sieve_client import SieveClient

__all__ = ["DEFAULT_URL", "ApiKey", "ApiUrl", "Collection", "open_client"]

DEFAULT_URL = "http://127.0.0.1:8000"
# A person is waiting at the terminal: a short retry budget, and no Retry-After over 10 s.
_MAX_RETRIES = 2
_MAX_RETRY_DELAY_S = 10.0

ApiUrl = Annotated[
    str,
    typer.Option(
        "--api-url",
        envvar="SIEVE_URL",
        help="Base URL of the Sieve API.",
        rich_help_panel="Connection",
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="SIEVE_API_KEY",
        help="API key, sent as Authorization: Bearer. Prefer the environment variable: "
        "command lines are visible to other users.",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
# The collection a sub-command (webhooks, query-log) works on.
Collection = Annotated[
    str, typer.Option("--collection", "-c", help="Collection name.", show_default=False)
]


def open_client(api_url: str, api_key: str | None) -> SieveClient:
    """A client for the API at ``api_url`` (typer has already read ``SIEVE_URL`` /
    ``SIEVE_API_KEY``: an absent key is sent as none, not looked up again)."""
    from sieve_client import SieveClient  # noqa: PLC0415 - keep `sieve --help` fast

    return SieveClient(
        api_url, api_key or "", max_retries=_MAX_RETRIES, max_retry_delay_s=_MAX_RETRY_DELAY_S
    )
