"""``sieve collections list|create|delete`` and ``sieve jobs show|cancel``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.cli.options import DEFAULT_URL, ApiKey, ApiUrl, open_client
from services.cli.reporting import one_line_errors, stdout

if TYPE_CHECKING:
    from sieve_client import JobResponse

__all__ = ["collections_app", "jobs_app"]

collections_app = typer.Typer(
    name="collections", help="List, create and delete collections.", no_args_is_help=True
)
jobs_app = typer.Typer(name="jobs", help="Show or cancel ingestion jobs.", no_args_is_help=True)


def _when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@collections_app.command("list")
def list_collections(api_url: ApiUrl = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """List the collections of your tenant."""
    with one_line_errors(), open_client(api_url, api_key) as client:
        from rich.table import Table  # noqa: PLC0415 - keep `sieve --help` fast
        from rich.text import Text  # noqa: PLC0415

        found = client.list_collections()
        out = stdout()
        if not found:
            out.print("no collections yet; create one with `sieve collections create NAME`")
            return
        table = Table()
        for column in ("name", "embedding model", "dim", "hybrid", "rerank model", "min score"):
            table.add_column(column, overflow="fold")
        table.add_column("created")
        for c in found:
            table.add_row(
                Text(c.name),
                Text(c.embedding_model),
                str(c.dimension),
                "yes" if c.hybrid else "no",
                Text(c.rerank_model or "(default)"),
                "(default)" if c.min_score is None else f"{c.min_score:g}",
                _when(c.created_at),
            )
        out.print(table)


@collections_app.command("create")
def create_collection(
    *,
    name: Annotated[str, typer.Argument(help="Collection name.", show_default=False)],
    embedding_model: Annotated[
        str | None, typer.Option(help="Embedding model (default: the server's).")
    ] = None,
    rerank_model: Annotated[
        str | None, typer.Option(help="Rerank model (default: the server's).")
    ] = None,
    min_score: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Default rerank score cutoff for queries."),
    ] = None,
    no_hybrid: Annotated[
        bool, typer.Option("--no-hybrid", help="Dense vectors only, no sparse (BM25) recall.")
    ] = False,
    late_interaction: Annotated[
        bool,
        typer.Option(
            "--late-interaction",
            help="Also store token vectors and rescore recall with MaxSim (scores.late).",
        ),
    ] = False,
    ttl: Annotated[
        float | None,
        typer.Option(
            "--ttl",
            min=0.001,
            help="Seconds after its upload a document expires, unless the upload sets its own "
            "expiry (default: never).",
        ),
    ] = None,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Create a collection; its embedding dimension is probed and pinned by the server."""
    spec: dict[str, Any] = {"name": name, "hybrid": not no_hybrid}
    if late_interaction:
        spec["late_interaction"] = True
    optional = {
        "embedding_model": embedding_model,
        "rerank_model": rerank_model,
        "min_score": min_score,
        "ttl_s": ttl,
    }
    spec.update({k: v for k, v in optional.items() if v is not None})
    with one_line_errors(), open_client(api_url, api_key) as client:
        created = client.create_collection(**spec)
        stdout().print(
            f"created collection {created.name}: {created.embedding_model}, "
            f"{created.dimension} dims, hybrid {'on' if created.hybrid else 'off'}, "
            f"late interaction {'on' if created.late_interaction else 'off'}"
            + (f", documents expire {created.ttl_s:g} s after upload" if created.ttl_s else ""),
            markup=False,
            soft_wrap=True,
        )


@collections_app.command("update")
def update_collection(
    *,
    name: Annotated[str, typer.Argument(help="Collection name.", show_default=False)],
    ttl: Annotated[
        float | None,
        typer.Option(
            "--ttl",
            min=0.001,
            help="Seconds after its upload a later-uploaded document expires, unless the "
            "upload sets its own expiry. Stored documents keep theirs.",
        ),
    ] = None,
    no_ttl: Annotated[
        bool, typer.Option("--no-ttl", help="Later uploads get no default expiry.")
    ] = False,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Change a collection's settings that are safe to change after creation (its --ttl)."""
    if (ttl is None) == (not no_ttl):
        raise typer.BadParameter("give --ttl SECONDS or --no-ttl (one of them)")
    with one_line_errors(), open_client(api_url, api_key) as client:
        updated = client.update_collection(name, ttl_s=None if no_ttl else ttl)
        stdout().print(
            f"updated collection {updated.name}: "
            + (
                f"documents uploaded from now on expire {updated.ttl_s:g} s after upload"
                if updated.ttl_s
                else "documents uploaded from now on do not expire by default"
            )
            + " (stored documents keep their expiry)",
            markup=False,
            soft_wrap=True,
        )


@collections_app.command("delete")
def delete_collection(
    name: Annotated[str, typer.Argument(help="Collection name.", show_default=False)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Delete a collection with all its documents and chunks (asks first unless --yes)."""
    if not yes:
        typer.confirm(f"Delete collection {name!r} with all its documents and chunks?", abort=True)
    with one_line_errors(), open_client(api_url, api_key) as client:
        client.delete_collection(name)
        stdout().print(f"deleted collection {name}", markup=False)


def _print_job(job: JobResponse) -> None:
    from rich.table import Table  # noqa: PLC0415 - keep `sieve --help` fast
    from rich.text import Text  # noqa: PLC0415

    out = stdout()
    alert = job.state not in ("completed", "queued", "running")
    out.print(
        Text.assemble(
            ("job ", "bold"),
            (job.id, "bold"),
            f" · {job.kind} into {job.collection} · ",
            (job.state, "bold yellow" if alert else "bold green"),
            " (cancel requested)" if job.cancelled and job.state != "cancelled" else "",
        )
    )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(job.counts.items())) or "no documents"
    out.print(Text(f"{job.total} documents: {counts}"))
    out.print(Text(f"created {_when(job.created_at)} · finished {_when(job.finished_at)}"))
    if job.errors:
        table = Table(title="Failures", title_justify="left")
        table.add_column("document", overflow="fold")
        table.add_column("reason")
        table.add_column("message", overflow="fold")
        for doc_id, err in sorted(job.errors.items()):
            table.add_row(Text(doc_id), Text(err.get("reason", "")), Text(err.get("message", "")))
        out.print(table)


@jobs_app.command("show")
def show_job(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id.", show_default=False)],
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Show a job: state, counts by document state, and failures."""
    with one_line_errors(), open_client(api_url, api_key) as client:
        _print_job(client.get_job(job_id))


@jobs_app.command("cancel")
def cancel_job(
    job_id: Annotated[str, typer.Argument(metavar="ID", help="Job id.", show_default=False)],
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Cancel a job: documents not yet written are skipped; written ones stay."""
    with one_line_errors(), open_client(api_url, api_key) as client:
        _print_job(client.cancel_job(job_id))
