"""The CLI against the real stack: real Redis, the real hub over HTTP, the API in-process over
HTTP, a real Celery worker. Runs as tenant A."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from services.cli.main import app
from tests.services.stack import KEY_A, Stack, running_stack

pytestmark = pytest.mark.slow

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "scifact"

FILES = {
    "photosynthesis.txt": "Photosynthesis converts light energy into chemical energy: plants use "
    "sunlight, water and carbon dioxide to make glucose and release oxygen.",
    "espresso.md": "# Espresso\n\nEspresso is coffee brewed by forcing hot water through finely "
    "ground beans at high pressure; a good shot has a thick crema.",
    "guides/qdrant.html": "<html><body><main><p>Qdrant is a vector database that stores dense "
    "and sparse vectors and answers nearest-neighbour queries.</p></main></body></html>",
    "empty.txt": "",
    ".notes.txt": "hidden files are skipped",
}


@pytest.fixture(scope="module")
def stack(
    redis_url: str, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(redis_url, hub_url, tmp_path_factory.mktemp("clistack")) as handle:
        yield handle


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kb")
    for name, text in FILES.items():
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_text(text)
    return root


def sieve(stack: Stack, *args: str) -> Result:
    runner = CliRunner(env={"SIEVE_URL": stack.api, "SIEVE_API_KEY": KEY_A, "COLUMNS": "200"})
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def ingested(stack: Stack, folder: Path) -> Result:
    return sieve(stack, "ingest", str(folder), "-c", "kb", "--create", "--wait")


def test_ingest_a_folder_waits_and_reports_the_empty_file(ingested: Result) -> None:
    assert ingested.exit_code == 1, ingested.output
    assert "created collection kb" in ingested.stderr
    assert re.search(r"empty\.txt\s+│\s+empty_document", ingested.stdout), ingested.stdout
    assert "indexed 3 · unchanged 0 · failed 1" in ingested.stdout
    assert ".notes.txt" not in ingested.stdout


def test_running_it_again_reports_everything_unchanged(
    stack: Stack, folder: Path, ingested: Result
) -> None:
    again = sieve(stack, "ingest", str(folder), "-c", "kb", "--create", "--wait")
    # The empty file is tried again (it failed) and fails again; the rest is unchanged.
    assert again.exit_code == 1, again.output
    assert "indexed 0 · unchanged 3 · failed 1" in again.stdout


def test_query_prints_a_table_with_the_expected_top_source(stack: Stack, ingested: Result) -> None:
    result = sieve(stack, "query", "how do plants turn sunlight into sugar", "-c", "kb")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert "photosynthesis.txt" in rows[0], result.stdout  # the header row uses ┃
    assert re.search(r"^│\s+1\s+│", rows[0])
    assert "rerank ok · " in result.stdout


def test_query_json_is_the_raw_response(stack: Stack, ingested: Result) -> None:
    args = ("query", "espresso crema", "-c", "kb", "--json", "--top-n", "2", "--no-rerank")
    result = sieve(stack, *args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert len(body["results"]) <= 2
    assert body["results"][0]["source"] == "espresso.md"
    assert body["rerank"]["status"] != "ok"  # not reranked, and the report says so


def test_explain_traces_named_documents(stack: Stack, ingested: Result) -> None:
    question = ("explain", "how do plants turn sunlight into sugar", "-c", "kb", "--top-n", "1")
    result = sieve(stack, *question, "--doc", "espresso.md", "--doc", "nope.md")
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert "returned" in rows["photosynthesis.txt"], result.stdout
    assert "below_top_n" in rows["espresso.md"], result.stdout
    assert "not_recalled" in rows["nope.md"], result.stdout
    as_json = json.loads(sieve(stack, *question, "--doc", "espresso.md", "--json").stdout)
    assert [t["document_id"] for t in as_json] == ["photosynthesis.txt", "espresso.md"]


def test_unknown_collection_is_one_line_and_exit_1(stack: Stack) -> None:
    result = sieve(stack, "query", "anything", "-c", "nope")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "sieve: collection 'nope' does not exist (collection_not_found)"
    ]


def test_a_scifact_jsonl_slice_in_batches(stack: Stack, tmp_path: Path) -> None:
    with (SCIFACT / "corpus.jsonl").open("rb") as corpus:
        lines = [next(corpus) for _ in range(30)]
    first = json.loads(lines[0])
    slice_file = tmp_path / "scifact30.jsonl"  # a slice for this test, not a copy to keep
    slice_file.write_bytes(b"".join(lines))
    args = ("ingest", str(slice_file), "-c", "scifact", "--create", "--wait", "--batch-lines")
    result = sieve(stack, *args, "12")
    assert result.exit_code == 0, result.output
    assert "indexed 30 · unchanged 0 · failed 0" in result.stdout
    result = sieve(stack, "query", first["title"], "-c", "scifact", "--json", "--top-n", "3")
    assert json.loads(result.stdout)["results"][0]["document_id"] == first["_id"]


def test_collections_list_create_delete(stack: Stack) -> None:
    created = sieve(stack, "collections", "create", "tmp1", "--min-score", "0.25", "--no-hybrid")
    assert created.exit_code == 0, created.output
    assert created.stdout.strip() == (
        "created collection tmp1: BAAI/bge-small-en-v1.5, 384 dims, hybrid off, "
        "late interaction off"
    )
    listed = sieve(stack, "collections", "list")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.stdout.splitlines() if "tmp1" in line)
    assert "0.25" in row
    assert " no " in row
    again = sieve(stack, "collections", "create", "tmp1")
    assert again.exit_code == 1
    assert again.stderr.splitlines() == [
        "sieve: collection 'tmp1' already exists (collection_exists)"
    ]
    assert sieve(stack, "collections", "delete", "tmp1", "--yes").exit_code == 0
    assert "tmp1" not in sieve(stack, "collections", "list").stdout
    late = sieve(stack, "collections", "create", "tmp2", "--late-interaction")
    assert late.exit_code == 0, late.output
    assert late.stdout.strip().endswith("hybrid on, late interaction on")
    assert sieve(stack, "collections", "delete", "tmp2", "--yes").exit_code == 0
    gone = sieve(stack, "collections", "delete", "tmp1", "--yes")
    assert gone.exit_code == 1
    assert "(collection_not_found)" in gone.stderr


def test_jobs_show_and_cancel(stack: Stack, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(6):
        (docs / f"note{i}.txt").write_text(f"Note number {i} about retrieval and ranking. " * 40)
    started = sieve(stack, "ingest", str(docs), "-c", "kb")
    assert started.exit_code == 0, started.output
    assert "queued 6 · unchanged 0 · failed 0" in started.stdout
    job_id = started.stdout.strip().split()[-1]
    cancelled = sieve(stack, "jobs", "cancel", job_id)
    assert cancelled.exit_code == 0, cancelled.output
    assert f"job {job_id} · ingest into kb · " in cancelled.stdout
    shown = sieve(stack, "jobs", "show", job_id)
    assert shown.exit_code == 0, shown.output
    assert "6 documents: " in shown.stdout
    with stack.client() as c:
        job = stack.wait_job(c, job_id)
    assert job["cancelled"] is True
    missing = sieve(stack, "jobs", "show", "no-such-job")
    assert missing.exit_code == 1
    assert missing.stderr.splitlines() == [
        "sieve: job 'no-such-job' does not exist (job_not_found)"
    ]
