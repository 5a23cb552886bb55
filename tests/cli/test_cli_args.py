"""The CLI surface with typer's ``CliRunner``: arguments, exit codes, one-line errors, and
what ``sieve ingest`` sends (batches, content types) to a small peer speaking Sieve's API
shapes over real HTTP. The real API is exercised in ``test_cli_e2e.py``."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from services.cli.main import app
from tests.servers import free_port, serve_in_thread


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "request_id": "r"}}, status_code=status
    )


@dataclass
class Peer:
    """Records what the CLI sent; refuses one named file with 413."""

    url: str = ""
    requests: list[dict[str, object]] = field(default_factory=list)
    # The query of each upload (its expiry).
    upload_params: list[dict[str, str]] = field(default_factory=list)
    too_large: str = "huge.bin"

    def app(self) -> Starlette:
        async def collections(request: Request) -> Response:
            self.requests.append(
                {"method": request.method, "auth": request.headers.get("authorization")}
            )
            if request.method == "POST":
                return _error(409, "collection_exists", "collection 'kb' already exists")
            return JSONResponse({"collections": []})

        async def collection(request: Request) -> Response:
            self.requests.append({"method": request.method, "path": request.url.path})
            return Response(status_code=204)

        async def documents(request: Request) -> Response:
            name = request.path_params["name"]
            if name != "kb":
                return _error(404, "collection_not_found", f"collection {name!r} does not exist")
            ctype = request.headers["content-type"].split(";")[0]
            self.upload_params.append(dict(request.query_params))
            if ctype == "multipart/form-data":
                async with request.form() as form:
                    files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
                    names = [f.filename or "" for f in files]
                self.requests.append({"type": ctype, "files": names})
                if self.too_large in names:
                    return _error(413, "payload_too_large", "huge.bin: over the per-file limit")
                ids = names
            else:
                lines = (await request.body()).split(b"\n")
                self.requests.append({"type": ctype, "lines": len(lines)})
                ids = [json.loads(line)["_id"] for line in lines]
            unchanged = [i for i in ids if i.startswith("same")]
            return JSONResponse(
                {
                    "job_id": f"job-{len(self.requests)}",
                    "documents": [i for i in ids if i not in unchanged],
                    "unchanged": unchanged,
                    "failed": {},
                },
                status_code=202,
            )

        return Starlette(
            routes=[
                Route("/v1/collections", collections, methods=["GET", "POST"]),
                Route("/v1/collections/{name}", collection, methods=["DELETE"]),
                Route("/v1/collections/{name}/documents", documents, methods=["POST"]),
            ]
        )


@pytest.fixture
def peer() -> Iterator[Peer]:
    state = Peer()
    with serve_in_thread(state.app(), lifespan="off") as url:
        state.url = url
        yield state


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"SIEVE_URL": None, "SIEVE_API_KEY": None, "COLUMNS": "200"})


def _down() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_help_lists_the_client_commands_and_the_exit_status(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("modelhub", "ingest", "query", "collections", "jobs", "query-log", "mcp"):
        assert name in result.stdout
    result = runner.invoke(app, ["ingest", "--help"])
    assert result.exit_code == 0
    assert "1 when any document failed" in result.stdout
    assert "SIEVE_API_KEY" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["query", "q"],  # no --collection
        ["query", "q", "-c", "kb", "--min-score", "2"],
        ["query", "q", "-c", "kb", "--top-n", "0"],
        ["query", "q", "-c", "kb", "--mode", "fuzzy"],
        ["query", "q", "-c", "kb", "--final", "best"],
        ["ingest", "/does/not/exist", "-c", "kb"],
        ["ingest", ".", "-c", "kb", "--batch-files", "0"],
        ["collections", "create", "kb", "--min-score", "-1"],
        ["collections", "create", "kb", "--ttl", "0"],
        ["ingest", ".", "-c", "kb", "--ttl", "-3"],
        ["jobs", "show"],
    ],
)
def test_usage_errors_exit_2_before_any_request(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--api-url", _down()])
    assert result.exit_code == 2, result.output
    assert "unreachable" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["collections", "list"],
        ["collections", "create", "kb"],
        ["collections", "delete", "kb", "--yes"],
        ["jobs", "show", "j1"],
        ["jobs", "cancel", "j1"],
        ["query", "what is rag", "-c", "kb", "--json"],
    ],
)
def test_api_down_is_one_line_on_stderr_and_exit_1(runner: CliRunner, args: list[str]) -> None:
    url = _down()
    result = runner.invoke(app, [*args, "--api-url", url])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"sieve: cannot reach the Sieve API at {url} — is `sieve up` running? (unreachable)"
    ]


def test_url_and_key_come_from_the_environment(peer: Peer) -> None:
    runner = CliRunner(env={"SIEVE_URL": peer.url, "SIEVE_API_KEY": "env-key"})
    result = runner.invoke(app, ["collections", "list"])
    assert result.exit_code == 0, result.output
    assert "no collections yet" in result.stdout
    assert peer.requests == [{"method": "GET", "auth": "Bearer env-key"}]
    result = runner.invoke(app, ["collections", "list", "--api-key", "flag-key"])
    assert peer.requests[-1] == {"method": "GET", "auth": "Bearer flag-key"}


def test_delete_asks_first_and_no_means_nothing_is_deleted(peer: Peer, runner: CliRunner) -> None:
    result = runner.invoke(app, ["collections", "delete", "kb", "--api-url", peer.url], input="n\n")
    assert result.exit_code == 1
    assert peer.requests == []
    result = runner.invoke(app, ["collections", "delete", "kb", "--api-url", peer.url], input="y\n")
    assert result.exit_code == 0
    assert "deleted collection kb" in result.stdout
    assert peer.requests == [{"method": "DELETE", "path": "/v1/collections/kb"}]


def test_a_folder_goes_in_batches_and_a_refused_batch_fails_alone(
    peer: Peer, runner: CliRunner, tmp_path: Path
) -> None:
    for name in ("a.txt", "b.txt", "c.md", "same.txt", "sub/d.html", ".hidden"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(f"content of {name}")
    (tmp_path / "huge.bin").write_bytes(b"\0" * 4096)
    args = ["ingest", str(tmp_path), "-c", "kb", "--create", "--batch-files", "2"]
    result = runner.invoke(app, [*args, "--api-url", peer.url])
    assert result.exit_code == 1, result.output
    # --create met 409 (exists) and went on.
    assert peer.requests[0]["method"] == "POST"
    uploads = [r["files"] for r in peer.requests[1:]]
    assert uploads == [["a.txt", "b.txt"], ["c.md", "huge.bin"], ["same.txt", "sub/d.html"]]
    assert "payload_too_large" in result.stdout
    assert "queued 3 · unchanged 1 · failed 2" in result.stdout  # both of the refused batch
    assert "sieve jobs show" in result.stdout


def test_a_jsonl_corpus_goes_as_ndjson_in_batches_of_lines(
    peer: Peer, runner: CliRunner, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    lines = [json.dumps({"_id": f"d{i}", "text": f"text {i}"}) for i in range(5)]
    corpus.write_text("\n".join(lines) + "\n\n")
    args = ["ingest", str(corpus), "-c", "kb", "--batch-lines", "2", "--api-url", peer.url]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert peer.requests == [{"type": "application/x-ndjson", "lines": n} for n in (2, 2, 1)]
    assert "queued 5 · unchanged 0 · failed 0" in result.stdout


def test_ingest_sends_the_expiry_with_every_batch_and_refuses_a_bad_one_before_any(
    peer: Peer, runner: CliRunner, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"_id": f"d{i}", "text": "t"}) for i in range(3)))
    base = ["ingest", str(corpus), "-c", "kb", "--batch-lines", "2", "--api-url", peer.url]
    assert runner.invoke(app, [*base, "--ttl", "60"]).exit_code == 0
    assert peer.upload_params == [{"ttl_s": "60.0"}] * 2
    at = "2030-01-31T12:00:00+01:00"
    assert runner.invoke(app, [*base, "--expires-at", at]).exit_code == 0
    assert peer.upload_params[2:] == [{"expires_at": at}] * 2
    for bad, code in (
        (["--expires-at", "2030-01-31T12:00:00"], "invalid_expiry"),
        (["--expires-at", "2001-01-01T00:00:00Z"], "expiry_in_past"),
        (["--expires-at", at, "--ttl", "5"], "invalid_expiry"),
    ):
        result = runner.invoke(app, [*base, *bad])
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("sieve: ")
        assert result.stderr.rstrip().endswith(f"({code})"), result.stderr
    assert len(peer.upload_params) == 4  # nothing sent for the refused ones


def test_unknown_collection_says_how_to_create_it(peer: Peer, runner: CliRunner) -> None:
    result = runner.invoke(app, ["ingest", __file__, "-c", "nope", "--api-url", peer.url])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "sieve: collection 'nope' does not exist; create it with `sieve collections create nope` "
        "or pass --create (collection_not_found)"
    ]


def test_an_empty_folder_is_one_error_line(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / ".only-hidden").write_text("x")
    result = runner.invoke(app, ["ingest", str(tmp_path), "-c", "kb", "--api-url", _down()])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"sieve: no files to ingest under {tmp_path} (hidden files are skipped) (empty_upload)"
    ]


def test_an_archive_goes_as_one_file_for_the_server_to_expand(
    peer: Peer, runner: CliRunner, tmp_path: Path
) -> None:
    archive = tmp_path / "kb.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", "alpha")
        zf.writestr("b.txt", "beta")
    result = runner.invoke(app, ["ingest", str(archive), "-c", "kb", "--api-url", peer.url])
    assert result.exit_code == 0, result.output
    assert peer.requests == [{"type": "multipart/form-data", "files": ["kb.zip"]}]


def test_sieve_api_sets_the_interpreters_switch_interval_before_serving(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415

    seen: dict[str, object] = {}

    def serve(app: object, **kwargs: object) -> None:
        seen["interval"] = sys.getswitchinterval()
        seen.update(kwargs)

    before = sys.getswitchinterval()
    monkeypatch.setattr(uvicorn, "run", serve)
    monkeypatch.setenv("SIEVE_API_SWITCH_INTERVAL_MS", "2.5")
    monkeypatch.setenv("SIEVE_API_PORT", str(free_port()))  # restored after the test
    try:
        result = runner.invoke(app, ["api"])
    finally:
        sys.setswitchinterval(before)
    assert result.exit_code == 0, result.output
    assert seen["interval"] == pytest.approx(0.0025)
    assert seen["http"] == "h11"
