"""``sieve ingest``: upload a folder, a JSONL corpus, a file or an archive; optionally wait for
indexing; report failures. Re-running skips unchanged documents (the server's content hash)."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple

import typer

from services.cli.batching import SourceKind, batch_by_size, classify, jsonl_batches, walk_directory
from services.cli.options import DEFAULT_URL, ApiKey, ApiUrl, open_client
from services.cli.reporting import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    fail,
    one_line_errors,
    stderr,
    stdout,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.progress import Progress
    from sieve_client import IngestAcceptedResponse, SieveClient

    from services.cli.ingest_report import IngestReport

__all__ = ["ingest"]

_MIB = 1024 * 1024
_POLL_S = 0.5
# Refused as a whole, so each of its documents failed: report them and go on with the rest.
_BATCH_REFUSED = frozenset({400, 413, 422})
_OPEN_JOBS = frozenset({"queued", "running"})


class _Expiry(NamedTuple):
    """The upload keywords of --expires-at / --ttl."""

    expires_at: str | None
    ttl_s: float | None


def ingest(
    *,
    path: Annotated[
        Path,
        typer.Argument(
            exists=True,
            readable=True,
            help="A folder (every non-hidden file), a .jsonl/.ndjson corpus in the BEIR layout, "
            "a document, or a zip/tar archive (expanded by the server).",
            show_default=False,
        ),
    ],
    collection: Annotated[
        str, typer.Option("--collection", "-c", help="Collection to ingest into.")
    ],
    create: Annotated[
        bool, typer.Option("--create", help="Create the collection if it does not exist.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for indexing and report every failure.")
    ] = False,
    batch_files: Annotated[
        int, typer.Option(min=1, max=10_000, help="At most this many files per request.")
    ] = 200,
    batch_lines: Annotated[
        int, typer.Option(min=1, max=100_000, help="At most this many JSONL lines per request.")
    ] = 2000,
    batch_mb: Annotated[
        int, typer.Option(min=1, max=1024, help="About this many MiB per request.")
    ] = 32,
    expires_at: Annotated[
        str | None,
        typer.Option(
            "--expires-at",
            help="The documents expire at this ISO-8601 time with a UTC offset "
            "(e.g. 2030-01-31T12:00:00Z): queries drop them then, the server deletes them.",
        ),
    ] = None,
    ttl: Annotated[
        float | None,
        typer.Option(
            "--ttl",
            min=0.001,
            help="The documents expire this many seconds after their upload (not with "
            "--expires-at; default: the collection's ttl, or never).",
        ),
    ] = None,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Upload documents to a collection; with --wait, follow indexing and list failures.

    Unchanged documents (same id, same content) are not indexed again: reported as unchanged.

    Exit status: 0 when every document is indexed, queued or unchanged;

    1 when any document failed, or on an error; 2 on a usage error.
    """
    expiry = _expiry_options(expires_at, ttl)
    with one_line_errors(), open_client(api_url, api_key) as client:
        from services.cli.ingest_report import IngestReport  # noqa: PLC0415 - fast --help

        if create:
            _ensure_collection(client, collection)
        report = IngestReport()
        max_bytes = batch_mb * _MIB
        _upload(
            client,
            collection,
            path,
            report,
            max_files=batch_files,
            max_lines=batch_lines,
            max_bytes=max_bytes,
            expiry=expiry,
        )
        if wait:
            _wait(client, report)
        _summarize(report, waited=wait)
    if report.failures():
        raise typer.Exit(code=EXIT_ERROR)


def _expiry_options(expires_at: str | None, ttl: float | None) -> _Expiry:
    """The upload keywords for --expires-at / --ttl, checked here so a bad value fails once
    (the server checks them again, with its bound)."""
    from core.errors import InvalidInput  # noqa: PLC0415 - fast --help
    from core.expiry import upload_expiry  # noqa: PLC0415

    try:
        upload_expiry(expires_at, ttl, now=time.time(), max_ttl_s=float("inf"))
    except InvalidInput as exc:
        fail(exc.message.replace("ttl_s", "--ttl").replace("expires_at", "--expires-at"), exc.code)
    return _Expiry(expires_at=expires_at, ttl_s=ttl)


def _ensure_collection(client: SieveClient, name: str) -> None:
    from sieve_client import SieveClientError  # noqa: PLC0415 - keep `sieve --help` fast

    try:
        created = client.create_collection(name)
    except SieveClientError as exc:
        if exc.status == 409:  # it exists already: that is what --create wants
            return
        raise
    stderr().print(
        f"created collection {name} ({created.embedding_model}, {created.dimension} dims)",
        markup=False,
    )


def _upload(
    client: SieveClient,
    collection: str,
    path: Path,
    report: IngestReport,
    *,
    max_files: int,
    max_lines: int,
    max_bytes: int,
    expiry: _Expiry,
) -> None:
    kind = classify(path)
    with _bytes_progress() as progress:
        if kind is SourceKind.DIRECTORY:
            entries = walk_directory(path)
            if not entries:
                fail(f"no files to ingest under {path} (hidden files are skipped)", "empty_upload")
            task = progress.add_task("uploading", total=sum(e.size for e in entries))
            for batch in batch_by_size(
                entries, lambda e: e.size, max_count=max_files, max_bytes=max_bytes
            ):
                files = [(e.name, e.path.read_bytes()) for e in batch]
                names = [e.name for e in batch]
                _send(
                    report,
                    collection,
                    names,
                    partial(
                        client.upload_files,
                        collection,
                        files,
                        expires_at=expiry.expires_at,
                        ttl_s=expiry.ttl_s,
                    ),
                )
                progress.advance(task, sum(e.size for e in batch))
        elif kind is SourceKind.JSONL:
            task = progress.add_task("uploading", total=path.stat().st_size)
            with path.open("rb") as fh:
                for n, (body, consumed) in enumerate(
                    jsonl_batches(fh, max_lines=max_lines, max_bytes=max_bytes), start=1
                ):
                    label = [f"{path.name} (batch {n})"]
                    _send(
                        report,
                        collection,
                        label,
                        partial(
                            client.upload_jsonl,
                            collection,
                            body,
                            expires_at=expiry.expires_at,
                            ttl_s=expiry.ttl_s,
                        ),
                    )
                    progress.advance(task, consumed)
            if not report.accepted and not report.batch_failures:
                fail(f"{path} holds no JSON lines", "empty_upload")
        else:
            task = progress.add_task("uploading", total=path.stat().st_size)
            data = path.read_bytes()
            _send(
                report,
                collection,
                [path.name],
                partial(
                    client.upload_files,
                    collection,
                    [(path.name, data)],
                    expires_at=expiry.expires_at,
                    ttl_s=expiry.ttl_s,
                ),
            )
            progress.advance(task, len(data))


def _send(
    report: IngestReport,
    collection: str,
    names: list[str],
    call: Callable[[], IngestAcceptedResponse],
) -> None:
    from sieve_client import SieveClientError  # noqa: PLC0415 - keep `sieve --help` fast

    from services.cli.ingest_report import Failure  # noqa: PLC0415

    try:
        report.accepted.append(call())
    except SieveClientError as exc:
        if exc.code == "collection_not_found":
            raise SieveClientError(
                f"{exc.message}; create it with `sieve collections create {collection}` "
                "or pass --create",
                exc.code,
                status=exc.status,
            ) from None
        if exc.status not in _BATCH_REFUSED:
            raise
        report.batch_failures += [Failure(name, exc.code, exc.message) for name in names]


def _wait(client: SieveClient, report: IngestReport) -> None:
    """Poll this run's jobs until none has a document in progress."""
    job_ids = report.job_ids_to_watch()
    if not job_ids:
        return
    from rich.progress import (  # noqa: PLC0415 - keep `sieve --help` fast
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = stderr()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[states]}"),
        TimeElapsedColumn(),
    )
    try:
        # Bars on a terminal only: in logs and pipes they are noise.
        with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
            task = progress.add_task("indexing", total=None, states="")
            while True:
                for job_id in job_ids:
                    known = report.jobs.get(job_id)
                    if known is None or known.state in _OPEN_JOBS:
                        report.jobs[job_id] = client.get_job(job_id)
                state = report.progress()
                states = ", ".join(f"{k} {v}" for k, v in sorted(state.counts.items()))
                progress.update(task, total=state.total, completed=state.done, states=states)
                if state.finished:
                    return
                time.sleep(_POLL_S)
    except KeyboardInterrupt:
        fail(
            f"stopped waiting; indexing goes on — follow it with `sieve jobs show {job_ids[-1]}`",
            "interrupted",
            EXIT_INTERRUPTED,
        )


def _summarize(report: IngestReport, *, waited: bool) -> None:
    from rich.table import Table  # noqa: PLC0415 - keep `sieve --help` fast
    from rich.text import Text  # noqa: PLC0415

    out = stdout()
    failures = report.failures()
    if failures:
        table = Table(title="Failures", title_justify="left")
        table.add_column("document", overflow="fold")
        table.add_column("reason")
        table.add_column("message", overflow="fold")
        for f in failures:
            table.add_row(Text(f.document), Text(f.reason), Text(f.message))
        out.print(table)
    counts = report.counts()
    line = " · ".join(f"{k} {v}" for k, v in counts.items())
    out.print(Text(line, style="bold red" if failures else "bold"))
    if not waited and counts.get("queued"):
        jobs = " ".join(report.job_ids_to_watch())
        out.print(Text(f"indexing in the background; follow it with `sieve jobs show ID`: {jobs}"))


def _bytes_progress() -> Progress:
    from rich.progress import (  # noqa: PLC0415 - keep `sieve --help` fast
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = stderr()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
