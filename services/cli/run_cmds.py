"""Process commands: ``sieve up``, ``sieve api``, ``sieve worker``, ``sieve optimize``."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import httpx
import typer

if TYPE_CHECKING:
    from services.cli.supervisor import StopSignal

__all__ = ["register"]

_SAMPLE_DIR = Path(__file__).with_name("sample")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"sieve: {message}", err=True)
    return typer.Exit(code=code)


def up(
    *,
    data_dir: Annotated[
        Path, typer.Option(help="Where Redis (AOF), the Edge store, blobs and logs live.")
    ] = Path("data"),
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    hub_port: Annotated[int, typer.Option(help="Local model hub port.")] = 8100,
    redis_port: Annotated[
        int | None, typer.Option(help="Redis port (default: a free one).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=16, help="Worker processes.")] = 1,
    local_hub: Annotated[
        bool,
        typer.Option(
            help="Start the bundled model hub (--no-local-hub: use SIEVE_MODEL_BASE_URL)."
        ),
    ] = True,
    sample: Annotated[bool, typer.Option(help="Load the sample collection on a first run.")] = True,
) -> None:
    """Run everything locally: Redis, the model hub, the API (Edge store) and a worker."""
    from services.cli.supervisor import (  # noqa: PLC0415 - fast --help
        StartInterrupted,
        Supervisor,
        UpConfig,
    )

    sup = Supervisor(
        UpConfig(
            data_dir=data_dir.resolve(),
            port=port,
            hub_port=hub_port,
            redis_port=redis_port,
            workers=workers,
            local_hub=local_hub,
            load_sample=sample,
        ),
        echo=typer.echo,
    )

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        sup.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    typer.echo(f"sieve up: starting (data in {data_dir.resolve()})")
    code = 0
    try:
        sup.start()
        api = f"http://127.0.0.1:{port}"
        if sample:
            _load_sample(api, sup.stopping)
        typer.echo(f"  api       {api}   docs: {api}/docs")
        typer.echo(f"  console   {api}/console/")
        typer.echo('ready. try:  sieve query "how does reranking work" -c sample   (Ctrl-C stops)')
        code = sup.watch()
    except StartInterrupted as exc:
        typer.echo(f"sieve up: {exc}")
    except RuntimeError as exc:
        typer.echo(f"sieve up: {exc}", err=True)
        code = 1
    finally:
        typer.echo("sieve up: stopping")
        sup.stop()
        typer.echo("sieve up: stopped")
    raise typer.Exit(code=code)


def _load_sample(api: str, stopping: StopSignal) -> None:
    """On a first run (no collections yet), load the bundled sample collection."""
    with httpx.Client(base_url=api, timeout=60) as client:
        resp = client.get("/v1/collections")
        if resp.status_code != 200 or resp.json().get("collections"):
            return
        if client.post("/v1/collections", json={"name": "sample"}).status_code != 201:
            return
        files = [
            ("files", (path.name, path.read_bytes(), "text/markdown"))
            for path in sorted(_SAMPLE_DIR.glob("*.md"))
        ]
        job = client.post("/v1/collections/sample/documents", files=files).json()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not stopping.is_set():
            state = client.get(f"/v1/jobs/{job['job_id']}").json()["state"]
            if state not in ("queued", "running"):
                typer.echo(f"  sample    collection 'sample' loaded ({len(files)} documents)")
                return
            stopping.wait(0.3)


def api(
    host: Annotated[str | None, typer.Option(help="Bind address (else SIEVE_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (else SIEVE_API_PORT).")] = None,
) -> None:
    """Serve the Sieve API (one process; in embedded mode it owns the Edge store)."""
    import os  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415
    from pydantic import ValidationError  # noqa: PLC0415

    if host is not None:
        os.environ["SIEVE_API_HOST"] = host
    if port is not None:
        os.environ["SIEVE_API_PORT"] = str(port)
    from core.settings import ApiSettings  # noqa: PLC0415
    from services.api.main import build_app  # noqa: PLC0415
    from services.serving import HTTP_IMPLEMENTATION, set_switch_interval  # noqa: PLC0415

    try:
        settings = ApiSettings()
        app = build_app()
    except ValidationError as exc:
        raise _fail(f"invalid settings:\n{exc}", 2) from None
    set_switch_interval(settings.switch_interval_ms)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
        http=HTTP_IMPLEMENTATION,
    )


def worker(
    queues: Annotated[str, typer.Option(help="Queues (compose mode: ingest,store_writes).")] = (
        "ingest"
    ),
    concurrency: Annotated[int, typer.Option(min=1, max=64)] = 1,
) -> None:
    """Run a Celery worker (prefork) for ingestion."""
    from services.worker.app import celery_app  # noqa: PLC0415

    celery_app.worker_main(
        [
            "worker",
            "-Q",
            queues,
            "--pool",
            "prefork",
            "-c",
            str(concurrency),
            "-l",
            "INFO",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ]
    )


def optimize(
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="Store collection (default: all).")
    ] = None,
) -> None:
    """Build the HNSW index of the embedded store offline (stop `sieve up` first)."""
    from core.errors import SieveError  # noqa: PLC0415
    from core.settings import StoreBackend, StoreSettings  # noqa: PLC0415
    from services.wiring import open_sync_store  # noqa: PLC0415

    settings = StoreSettings()
    if settings.backend is not StoreBackend.EDGE:
        raise _fail("optimize is for the embedded Edge store; a Qdrant server indexes itself")
    try:
        store = open_sync_store(settings)
        names = (
            [collection]
            if collection
            else sorted(p.name for p in Path(settings.path).iterdir() if p.is_dir())
        )
        for name in names:
            started = time.perf_counter()
            store.optimize(name)
            typer.echo(f"{name}: index built in {time.perf_counter() - started:.1f}s")
        store.close()
    except SieveError as exc:
        raise _fail(f"{exc.message} ({exc.code})") from None
    except FileNotFoundError:
        raise _fail(f"no embedded store at {settings.path}") from None


def register(app: typer.Typer) -> None:
    """Add the process commands to the ``sieve`` app."""
    app.command()(up)
    app.command()(api)
    app.command()(worker)
    app.command()(optimize)
