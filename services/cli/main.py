"""The ``sieve`` command line: one typer app, one subcommand per process Sieve runs."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from core.settings import LogSettings, ModelHubSettings
from services.cli import run_cmds
from services.cli.commands import register_client_commands
from services.cli.eval_cmd import evaluate
from services.cli.tune_cmd import tune
from services.stack_dumps import dump_stacks_on_sigusr1

__all__ = ["app"]

app = typer.Typer(
    name="sieve",
    help="Sieve: two-stage RAG retrieval (hybrid recall, then rerank with a score cutoff).",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """Sieve's processes and tools."""
    dump_stacks_on_sigusr1()


@app.command()
def modelhub(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default 127.0.0.1; others need a key).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8100).")] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key",
            help="Accepted bearer key; repeat for several. Prefer SIEVE_MODELHUB_API_KEYS: "
            "command lines are visible to other users.",
        ),
    ] = None,
) -> None:
    """Serve the local model hub (/v1/models, /v1/embeddings, /v1/rerank) with uvicorn."""
    from services.modelhub import serve  # noqa: PLC0415 - keep `sieve --help` fast

    overrides: dict[str, Any] = {"host": host, "port": port, "api_keys": api_key}
    try:
        settings = ModelHubSettings(**{k: v for k, v in overrides.items() if v is not None})
        log_settings = LogSettings()
    except ValidationError as exc:
        typer.echo(f"sieve modelhub: invalid settings:\n{exc}", err=True)
        raise typer.Exit(code=2) from None
    serve(settings, log_settings)


run_cmds.register(app)
register_client_commands(app)
app.command("eval", rich_help_panel="Client")(evaluate)
app.command("tune", rich_help_panel="Client")(tune)

if __name__ == "__main__":
    app()
