"""``sieve backup -c C -o FILE`` and ``sieve restore FILE [--as NAME]``: portable bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.cli.options import DEFAULT_URL, ApiKey, ApiUrl, open_client
from services.cli.reporting import one_line_errors, stdout

__all__ = ["backup", "restore"]


def backup(
    *,
    collection: Annotated[
        str, typer.Option("-c", "--collection", help="Collection to back up.", show_default=False)
    ],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="Bundle file to write.", show_default=False),
    ],
    timeout_s: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Seconds to wait for the snapshot.")
    ] = 3600.0,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Snapshot a collection (records, chunks, every vector kind, page images, policy,
    feedback, last evaluation) into one checksummed bundle file."""
    with one_line_errors(), open_client(api_url, api_key) as client:
        snap = client.backup(collection, output, timeout_s=timeout_s)
        note = f", {snap.skipped} skipped (a write of theirs had died)" if snap.skipped else ""
        stdout().print(
            f"wrote {output}: {snap.documents} documents, {snap.chunks} chunks, "
            f"{snap.blobs} blobs, {snap.bytes} bytes{note}"
        )


def restore(
    *,
    bundle: Annotated[Path, typer.Argument(help="Bundle file (from `sieve backup`).")],
    name: Annotated[
        str | None,
        typer.Option("--as", help="Restore under this name (default: the bundle's)."),
    ] = None,
    reindex: Annotated[
        bool,
        typer.Option(
            "--reindex",
            help="Restore even if this hub does not serve the bundle's models, then "
            "re-embed with its default models.",
        ),
    ] = False,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Create a collection from a bundle, on either store, without embedding anything."""
    with one_line_errors(), open_client(api_url, api_key) as client:
        out = client.restore(bundle, name=name, reindex=reindex)
        job = f"; re-index job {out.reindex_job}" if out.reindex_job else ""
        stdout().print(
            f"restored {out.collection}: {out.documents} documents, {out.chunks} chunks, "
            f"{out.blobs} blobs, {out.feedback} judgments{job}"
        )
