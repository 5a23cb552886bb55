"""``sieve eval DATASET_DIR``: quality and latency of the running service on a BEIR dataset."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from services.cli.options import DEFAULT_URL, ApiKey, ApiUrl, open_client

__all__ = ["evaluate"]

_BATCH_LINES = 2000


def evaluate(
    dataset: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="BEIR layout directory.")
    ],
    *,
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="Default: beir-<dataset dir name>.")
    ] = None,
    recreate: Annotated[bool, typer.Option(help="Drop and re-ingest the collection.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N queries.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Queries in flight.")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    save: Annotated[
        bool, typer.Option(help="Store the report on the server for the console's view.")
    ] = True,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Ingest (or reuse) a BEIR dataset, run every judged query, print nDCG@10/R@100/MRR@10.

    Rows: dense, sparse, hybrid recall, and hybrid + rerank under each final-score policy;
    then per-stage latency p50/p95 and a min_score sweep over the default top 10. The
    report is stored on the server (``GET /v1/collections/{name}/evaluation``, shown by the
    console) unless ``--no-save``.
    """
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import Progress  # noqa: PLC0415
    from sieve_client import EvaluationReport, SieveClientError  # noqa: PLC0415

    from core.settings import RerankSettings  # noqa: PLC0415
    from reranker import FusionParams  # noqa: PLC0415
    from services.cli.evaluation import load_beir, run_eval  # noqa: PLC0415
    from services.cli.reporting import api_error_message  # noqa: PLC0415

    # The policy the server does not apply is computed here with the server's parameters.
    rerank = RerankSettings()
    console = Console(stderr=as_json)
    data = load_beir(dataset)
    name = collection or f"beir-{dataset.name}"[:120]
    try:
        with open_client(api_url, api_key) as client:
            _ensure_ingested(client, name, data.corpus, recreate=recreate, console=console)
            total = min(len(data.queries), limit or len(data.queries))
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task("queries", total=total)
                report = run_eval(
                    data,
                    name,
                    lambda body: client.query_raw(name, body, log=False),
                    fusion=FusionParams(
                        recall_weight=rerank.fusion_recall_weight,
                        rerank_weight=rerank.fusion_rerank_weight,
                        k=rerank.fusion_k,
                        window=rerank.window,
                    ),
                    limit=limit,
                    concurrency=concurrency,
                    progress=lambda n: bar.update(task, completed=n),
                )
            if save:
                client.put_evaluation(name, EvaluationReport.model_validate(report.to_json()))
    except SieveClientError as exc:
        typer.echo(f"sieve: {api_error_message(exc)} ({exc.code})", err=True)
        raise typer.Exit(code=1) from None
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    _print(console, report.to_json())


def _ensure_ingested(client: Any, name: str, corpus: Path, *, recreate: bool, console: Any) -> None:
    from rich.progress import Progress  # noqa: PLC0415
    from sieve_client import SieveClientError  # noqa: PLC0415

    exists = True
    try:
        client.get_collection(name)
    except SieveClientError as exc:
        if exc.status != 404:
            raise
        exists = False
    if exists and not recreate:
        console.print(f"reusing collection {name!r} (--recreate to ingest again)")
        return
    if exists:
        client.delete_collection(name)
    client.create_collection(name)
    lines = corpus.read_bytes().splitlines()
    jobs = []
    with Progress(console=console, transient=True) as bar:
        up = bar.add_task("upload", total=len(lines))
        for start in range(0, len(lines), _BATCH_LINES):
            batch = lines[start : start + _BATCH_LINES]
            jobs.append(client.upload_jsonl(name, b"\n".join(batch)).job_id)
            bar.update(up, advance=len(batch))
        index = bar.add_task("index", total=len(lines))
        while True:
            done = 0
            pending = False
            for job_id in jobs:
                job = client.get_job(job_id)
                done += sum(v for k, v in job.counts.items() if k in ("indexed", "failed"))
                pending = pending or job.state in ("queued", "running")
            bar.update(index, completed=done)
            if not pending:
                break
            time.sleep(1.0)
    console.print(f"ingested {len(lines)} documents into {name!r}")


def _print(console: Any, report: dict[str, Any]) -> None:
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=f"{report['collection']}: {report['queries']} queries")
    for col in ("configuration", "nDCG@10", "Recall@100", "MRR@10"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    for config, m in report["metrics"].items():
        table.add_row(config, f"{m['ndcg@10']:.4f}", f"{m['recall@100']:.4f}", f"{m['mrr@10']:.4f}")
    console.print(table)
    lat = Table(title="latency per stage (ms), default settings")
    for col in ("stage", "p50", "p95"):
        lat.add_column(col, justify="right")
    for stage, v in report["latency_ms"].items():
        lat.add_row(stage, f"{v['p50']:.1f}", f"{v['p95']:.1f}")
    console.print(lat)
    sweep = Table(title="min_score sweep over the default top 10")
    for col in ("min_score", "kept", "relevant kept"):
        sweep.add_column(col, justify="right")
    for row in report["min_score_sweep"]:
        sweep.add_row(f"{row['min_score']:.2f}", str(row["kept"]), str(row["relevant_kept"]))
    console.print(sweep)
    for note in report["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")
    console.print(f"{report['seconds']:.0f}s; rerank statuses: {report['rerank_statuses']}")
