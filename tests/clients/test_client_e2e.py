"""sieve_client against the running embedded stack: every method, the error tree, retries
on a real 503 with Retry-After, waiting on jobs, and its models against the live OpenAPI."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import sieve_client.models as client_models
from pydantic import BaseModel
from sieve_client import (
    AsyncSieveClient,
    AuthenticationError,
    ConflictError,
    ConnectionFailed,
    IngestWaitResponse,
    InvalidRequestError,
    JobWaitTimeout,
    NotFoundError,
    RequestTimeoutError,
    ServiceUnavailableError,
    SieveClient,
    UploadProgress,
    ValidationFailedError,
)
from typer.testing import CliRunner

from services.cli.main import app
from tests.clients.openapi_shapes import component_name, model_schemas, shape
from tests.servers import free_port
from tests.services.stack import KEY_A, KEY_B, Stack

pytestmark = pytest.mark.slow

DOCS = [
    {
        "id": "photosynthesis",
        "title": "Photosynthesis",
        "text": "Photosynthesis converts light energy into chemical energy: plants use sunlight, "
        "water and carbon dioxide to make glucose and release oxygen.",
        "metadata": {"lang": "en", "year": 1779},
    },
    {
        "id": "espresso",
        "title": "Espresso",
        "text": "Espresso is coffee brewed by forcing hot water through finely ground beans at "
        "high pressure; a good shot has a thick crema.",
        "metadata": {"lang": "en", "year": 1901},
    },
    {
        "id": "kaffee",
        "title": "Kaffee",
        "text": "Kaffee ist ein Getränk aus gerösteten und gemahlenen Kaffeebohnen.",
        "metadata": {"lang": "de", "year": 1700},
    },
]
QUERY = "how do plants turn sunlight into sugar"


@pytest.fixture(scope="module")
def sieve(stack: Stack) -> Iterator[SieveClient]:
    with SieveClient(stack.api, KEY_A) as client:
        client.create_collection("kb", min_score=0.05)
        job = client.upload_documents("kb", DOCS)
        assert client.wait_job(job.job_id, timeout_s=120).counts == {"indexed": 3}
        yield client


# ---------------------------------------------------------------- collections


def test_collections_create_list_get_delete(sieve: SieveClient) -> None:
    made = sieve.create_collection("scratch", hybrid=True, rerank_model=None)
    assert (made.name, made.dimension, made.documents) == ("scratch", 384, 0)
    assert {"kb", "scratch"} <= {c.name for c in sieve.list_collections()}
    kb = sieve.get_collection("kb")
    assert (kb.documents, kb.documents_by_status, kb.min_score) == (3, {"indexed": 3}, 0.05)
    assert kb.chunks is not None
    assert kb.chunks >= 3
    with pytest.raises(ConflictError) as conflict:
        sieve.create_collection("scratch")
    assert conflict.value.status == 409
    assert conflict.value.request_id
    sieve.delete_collection("scratch")
    with pytest.raises(NotFoundError) as missing:
        sieve.get_collection("scratch")
    assert missing.value.code == "collection_not_found"


def test_a_collections_ttl_changes_for_later_uploads_only(stack: Stack, sieve: SieveClient) -> None:
    sieve.create_collection("ttl-later")
    first = sieve.upload_documents("ttl-later", [{"id": "before", "text": "Kept for ever."}])
    changed = sieve.update_collection("ttl-later", ttl_s=3600)
    assert (changed.name, changed.ttl_s, changed.documents) == ("ttl-later", 3600, 1)
    assert sieve.get_collection("ttl-later").ttl_s == 3600
    at = time.time()
    second = sieve.upload_documents("ttl-later", [{"id": "after", "text": "Gone in an hour."}])
    for job in (first, second):
        sieve.wait_job(job.job_id, timeout_s=120)
    # The new default is the upload's; a stored document keeps the expiry it had.
    assert sieve.get_document("ttl-later", "before").expires_at is None
    expires = sieve.get_document("ttl-later", "after").expires_at
    assert expires is not None
    assert abs(_timestamp(expires) - (at + 3600)) < 60
    # Cleared: later uploads get none, and "after" keeps its hour.
    assert sieve.update_collection("ttl-later", ttl_s=None).ttl_s is None
    third = sieve.upload_documents("ttl-later", [{"id": "later", "text": "Kept again."}])
    sieve.wait_job(third.job_id, timeout_s=120)
    assert sieve.get_document("ttl-later", "later").expires_at is None
    assert sieve.get_document("ttl-later", "after").expires_at == expires
    # Checked as at create, in the one error body; nothing changed by a refusal.
    with pytest.raises(ValidationFailedError):
        sieve.update_collection("ttl-later", ttl_s=0)  # refused before it is sent
    with stack.client() as raw:
        for body, status, code in (
            ({"ttl_s": 1e12}, 400, "invalid_expiry"),  # past SIEVE_API_MAX_TTL_S
            ({"ttl_s": -5}, 422, "invalid_request"),
            ({}, 400, "invalid_request"),
            ({"ttl_s": 60, "embedding_model": "other"}, 422, "invalid_request"),  # not changeable
        ):
            resp = raw.patch("/v1/collections/ttl-later", json=body)
            assert resp.status_code == status, (body, resp.text)
            assert set(resp.json()) == {"error"}
            assert resp.json()["error"]["code"] == code
        assert raw.patch("/v1/collections/nope", json={"ttl_s": 60}).status_code == 404
    assert sieve.get_collection("ttl-later").ttl_s is None
    with pytest.raises(NotFoundError):
        sieve.update_collection("nope", ttl_s=60)
    # The CLI: sieve collections update NAME --ttl S | --no-ttl.
    env = {"SIEVE_URL": stack.api, "SIEVE_API_KEY": KEY_A}
    out = CliRunner().invoke(app, ["collections", "update", "ttl-later", "--ttl", "90"], env=env)
    assert out.exit_code == 0, out.output
    assert "expire 90 s after upload" in " ".join(out.output.split())
    assert sieve.get_collection("ttl-later").ttl_s == 90
    out = CliRunner().invoke(app, ["collections", "update", "ttl-later", "--no-ttl"], env=env)
    assert out.exit_code == 0, out.output
    assert sieve.get_collection("ttl-later").ttl_s is None
    out = CliRunner().invoke(app, ["collections", "update", "ttl-later"], env=env)
    assert out.exit_code == 2, out.output
    sieve.delete_collection("ttl-later")


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_tenants_and_keys(stack: Stack, sieve: SieveClient) -> None:
    with SieveClient(stack.api, KEY_B) as other:
        assert "kb" not in {c.name for c in other.list_collections()}
        with pytest.raises(NotFoundError):
            other.query("kb", QUERY)
    stranger = SieveClient(stack.api, "not-a-key-of-anyone-at-all")
    with stranger, pytest.raises(AuthenticationError) as denied:
        stranger.list_collections()
    assert denied.value.status == 401


# ---------------------------------------------------------------- documents and jobs


def test_upload_files_reports_progress_and_jobs_finish(sieve: SieveClient, tmp_path: Path) -> None:
    sieve.create_collection("files")
    note = tmp_path / "moon.md"
    note.write_text("# The Moon\n\nThe Moon orbits the Earth every 27.3 days.\n")
    # Over 64 KiB on the wire (several progress steps) but one short text to index.
    padded = b"Tides are caused mainly by the Moon's gravity.\n" + b" " * 150_000
    seen: list[UploadProgress] = []
    accepted = sieve.upload_files("files", [note, ("tides.txt", padded)], progress=seen.append)
    assert sorted(accepted.documents) == ["moon.md", "tides.txt"]
    assert seen[0].sent_bytes == 0
    assert seen[-1].fraction == 1.0
    assert len(seen) > 3
    assert seen[-1].total_bytes > 150_000
    assert [s.sent_bytes for s in seen] == sorted(s.sent_bytes for s in seen)
    updates: list[str] = []
    job = sieve.wait_job(accepted.job_id, on_update=lambda j: updates.append(j.state))
    assert job.finished
    assert job.counts == {"indexed": 2}
    assert job.finished_at is not None
    assert updates[-1] == job.state
    assert job.state not in ("queued", "running")
    assert sieve.get_job(job.id).id == job.id

    lines = b'{"_id": "d1", "title": "Tea", "text": "Green tea is steamed, black tea oxidised."}\n'
    again = sieve.upload_jsonl("files", lines)
    assert again.documents == ["d1"]
    sieve.wait_job(again.job_id)
    unchanged = sieve.upload_jsonl("files", lines)
    assert unchanged.documents == []
    assert unchanged.unchanged == ["d1"]

    page = sieve.list_documents("files", status="indexed", limit=2)
    assert (page.total, page.limit, len(page.documents)) == (3, 2, 2)
    doc = sieve.get_document("files", "tides.txt")
    assert doc.status == "indexed"
    assert doc.chunk_count >= 1

    replaced = sieve.replace_document("files", "d1", text="Oolong is partly oxidised.", title="Tea")
    assert sieve.wait_job(replaced.job_id).counts == {"indexed": 1}
    hit = sieve.query("files", "partly oxidised tea", top_n=1, rerank=False).results[0]
    assert (hit.document_id, hit.text) == ("d1", "Oolong is partly oxidised.")

    gone = sieve.delete_document("files", "moon.md")
    assert (gone.document_id, gone.status) == ("moon.md", "deleted")
    with pytest.raises(NotFoundError):
        sieve.delete_document("files", "moon.md")
    with pytest.raises(ValidationFailedError) as bad_page:
        sieve.list_documents("files", limit=5000)
    assert bad_page.value.status == 422
    assert bad_page.value.details


def test_a_hostile_document_id_never_reaches_another_collection(sieve: SieveClient) -> None:
    sieve.create_collection("notes")
    sieve.create_collection("victim")
    job = sieve.upload_documents("victim", [{"id": "v1", "text": "The victim's only text."}])
    assert sieve.wait_job(job.job_id).counts == {"indexed": 1}
    for hostile in ("../../victim", "./../../victim", "..", "../../victim/documents/v1"):
        with pytest.raises(NotFoundError):
            sieve.delete_document("notes", hostile)
    with pytest.raises(InvalidRequestError) as refused:
        sieve.replace_document("notes", "../../victim", text="planted")
    assert (refused.value.status, refused.value.code) == (400, "invalid_document_id")
    assert sieve.get_collection("victim").documents == 1
    assert sieve.get_document("victim", "v1").status == "indexed"
    # Ids that are legal but need encoding still round-trip through every method.
    odd = ["dir/a b.md", "100%#?.txt", "a/..b/c.", "q?x=1&y=%2F"]
    job = sieve.upload_documents("notes", [{"id": i, "text": f"The text of {i}."} for i in odd])
    assert sieve.wait_job(job.job_id).counts == {"indexed": len(odd)}
    for doc_id in odd:
        assert sieve.get_document("notes", doc_id).id == doc_id
        assert sieve.delete_document("notes", doc_id).document_id == doc_id
    assert sieve.get_collection("victim").documents == 1


def test_wait_gives_up_with_the_last_state_and_cancel_stops_the_job(
    stack: Stack, sieve: SieveClient
) -> None:
    sieve.create_collection("slow")
    stack.plan.hang_next(1, 4.0, endpoint="embeddings")
    job = sieve.upload_documents("slow", [{"id": "a", "text": "alpha " * 50}])
    with pytest.raises(JobWaitTimeout) as waited:
        sieve.wait_job(job.job_id, timeout_s=0.5, poll_s=0.1)
    assert waited.value.job.state in ("queued", "running")
    cancelled = sieve.cancel_job(job.job_id)
    assert cancelled.cancelled
    assert sieve.wait_job(job.job_id, timeout_s=60).finished
    with pytest.raises(NotFoundError):
        sieve.get_job("no-such-job")


# ---------------------------------------------------------------- query and models


def test_query_knobs_and_provenance(sieve: SieveClient) -> None:
    out = sieve.query("kb", QUERY, top_n=2, top_k=10, final="rerank")
    assert out.rerank.status == "ok"
    assert out.rerank.final == "rerank"
    top = out.results[0]
    assert (top.document_id, top.collection, top.title) == (
        "photosynthesis",
        "kb",
        "Photosynthesis",
    )
    assert top.scores.rerank is not None
    assert top.scores.dense is not None
    assert set(out.timings_ms) >= {"embed", "recall", "rerank", "total"}
    german = sieve.query("kb", "Getränk Bohnen", filter={"metadata": {"lang": "de"}}, rerank=False)
    assert [h.document_id for h in german.results] == ["kaffee"]
    assert german.rerank.status == "skipped"
    old = sieve.query("kb", "coffee", filter={"metadata": {"year": {"lt": 1800}}}, mode="sparse")
    assert {h.document_id for h in old.results} <= {"kaffee", "photosynthesis"}
    strict = sieve.query("kb", QUERY, min_score=0.99)
    assert strict.rerank.min_score == 0.99
    assert strict.rerank.dropped_by_cutoff >= 1
    both = sieve.query(["kb", "kb"], QUERY, top_n=1)
    assert both.results[0].document_id == "photosynthesis"
    with pytest.raises(InvalidRequestError) as too_many:
        sieve.query("kb", QUERY, top_k=5, top_n=8)
    assert too_many.value.status == 400
    with pytest.raises(ValidationFailedError) as local:
        sieve.query("kb", QUERY, min_score=2)
    assert local.value.status is None  # refused before sending
    with pytest.raises(InvalidRequestError) as unknown:
        sieve.query("kb", QUERY, rerank_model="no/such-model")
    assert unknown.value.code == "unknown_model"


def test_rerank_budget_knobs_reach_the_server(sieve: SieveClient) -> None:
    out = sieve.query("kb", "coffee brewed from beans", rerank_depth=2, autocut=1, top_n=3)
    assert (out.rerank.requested_depth, out.rerank.autocut) == (2, 1)
    assert out.rerank.depth <= 2
    unlate = sieve.query("kb", QUERY, late=False, rerank=False)
    assert all(h.scores.late is None for h in unlate.results)


def test_policy_and_feedback_round_trip(sieve: SieveClient) -> None:
    assert sieve.get_policy("kb").policy is None
    stored = sieve.put_policy("kb", {"rerank_depth": 3, "final": "fusion", "fusion_k": 2})
    assert stored.policy is not None
    assert (stored.policy.rerank_depth, stored.policy.final) == (3, "fusion")
    assert sieve.get_collection("kb").policy == stored.policy
    out = sieve.query("kb", "which drink has a crema")
    assert (out.rerank.final, out.rerank.requested_depth) == ("fusion", 3)
    with pytest.raises(ValidationFailedError):
        sieve.put_policy("kb", {"rerank_depth": -1})
    assert sieve.clear_policy("kb").policy is None
    first = sieve.add_feedback("kb", QUERY, "photosynthesis", relevant=True)
    second = sieve.add_feedback("kb", QUERY, "espresso", relevant=False)
    assert second.count == first.count + 1
    judged = sieve.list_feedback("kb").judgments[-2:]
    assert [(j.document_id, j.relevant) for j in judged] == [
        ("photosynthesis", True),
        ("espresso", False),
    ]
    with pytest.raises(NotFoundError):
        sieve.add_feedback("nope", QUERY, "photosynthesis", relevant=True)


def test_query_log_round_trip(sieve: SieveClient) -> None:
    assert sieve.get_query_log("kb").config is None
    on = sieve.enable_query_log("kb", sample_rate=1.0, max_entries=5, ttl_s=600)
    assert on.config is not None
    assert (on.config.max_entries, on.config.ttl_s) == (5, 600)
    try:
        sieve.query("kb", "which drink has a crema")
        deadline = time.monotonic() + 10
        while not (page := sieve.list_query_log("kb", limit=1)).entries:
            assert time.monotonic() < deadline, "never logged"
            time.sleep(0.05)
        assert page.entries[0].query == "which drink has a crema"
        assert page.total == 1
        assert page.next_offset is None
        with pytest.raises(ValidationFailedError):
            sieve.enable_query_log("kb", sample_rate=2.0)
    finally:
        off = sieve.disable_query_log("kb")
    assert off.enabled is False
    assert sieve.list_query_log("kb").total == 0


def test_evaluation_reports_are_stored_and_read(sieve: SieveClient) -> None:
    with pytest.raises(NotFoundError) as none:
        sieve.get_evaluation("kb")
    assert none.value.code == "evaluation_not_found"
    report = client_models.EvaluationReport(
        collection="kb",
        queries=2,
        metrics={"hybrid": {"ndcg@10": 0.5}},
        latency_ms={"hybrid": {"p50": 12.0}},
        min_score_sweep=[client_models.SweepRow(min_score=0.1, kept=3, relevant_kept=2)],
    )
    saved = sieve.put_evaluation("kb", report)
    assert saved.saved_at is not None
    back = sieve.get_evaluation("kb")
    assert back.model_dump(exclude={"saved_at"}) == report.model_dump(exclude={"saved_at"})


def test_models_health_ready(sieve: SieveClient) -> None:
    ids = {m.id for m in sieve.list_models()}
    assert {"BAAI/bge-small-en-v1.5", "cross-encoder/ms-marco-MiniLM-L-12-v2"} <= ids
    assert sieve.health() == {"status": "ok"}
    assert sieve.ready()["status"] == "ready"


def test_a_real_503_is_retried_after_its_retry_after(stack: Stack, sieve: SieveClient) -> None:
    # The query path's embedding client tries 3 times (services/wiring.py), then the API
    # answers 503 with a Retry-After; the client waits that long and tries again.
    waits: list[float] = []
    stack.plan.retry_after = "0"
    with SieveClient(stack.api, KEY_A, sleep=waits.append) as client:
        stack.plan.fail_next(3, 503, endpoint="embeddings")
        out = client.query("kb", QUERY, top_n=1)
        assert out.results[0].document_id == "photosynthesis"
        assert waits == [1.0]  # the API's Retry-After: 1, not the exponential default
    with SieveClient(stack.api, KEY_A, max_retries=0) as impatient:
        stack.plan.fail_next(3, 503, endpoint="embeddings")
        with pytest.raises(ServiceUnavailableError) as unavailable:
            impatient.query("kb", QUERY)
        assert unavailable.value.status == 503
    stack.plan.fail_next(0, 503, endpoint="embeddings")
    stack.plan.retry_after = "1"


def test_unreachable_and_timeouts_are_client_errors(stack: Stack, sieve: SieveClient) -> None:
    nowhere = SieveClient(f"http://127.0.0.1:{free_port()}")
    with nowhere, pytest.raises(ConnectionFailed) as failed:
        nowhere.list_collections()
    assert failed.value.code == "unreachable"
    stack.plan.hang_next(1, 2.0, endpoint="rerank")
    hasty = SieveClient(stack.api, KEY_A, timeout=0.5)
    with hasty, pytest.raises(RequestTimeoutError) as late:
        # A query never asked before: its rerank scores cannot come from the cache.
        hasty.query("kb", f"{QUERY} {time.monotonic_ns()}")
    assert late.value.code == "timeout"


def test_wait_answers_with_the_terminal_job_past_the_read_timeout(
    stack: Stack, sieve: SieveClient
) -> None:
    # The job outlasts the client's 1 s timeouts: the wait stretches the read timeout.
    sieve.create_collection("waited")
    stack.plan.hang_next(1, 2.0, endpoint="embeddings")
    with SieveClient(stack.api, KEY_A, timeout=1.0, upload_timeout=1.0) as hasty:
        out = hasty.upload_documents("waited", DOCS[:1], wait=True, timeout_s=30)
    assert isinstance(out, IngestWaitResponse)
    assert (out.job.state, out.job.documents) == ("completed", {"photosynthesis": "indexed"})
    assert sieve.query("waited", QUERY, top_n=1).results[0].document_id == "photosynthesis"
    with pytest.raises(ValueError, match="wait=True"):
        sieve.upload_documents("waited", DOCS, timeout_s=5)

    async def main() -> None:
        async with AsyncSieveClient(stack.api, KEY_A) as client:
            job = await client.reindex_collection(
                "waited", late_interaction=True, wait=True, timeout_s=60
            )
            assert (job.kind, job.state) == ("reindex", "completed")
            line = b'{"_id": "jl", "title": "J", "text": "Herons fish in the shallow marsh."}\n'
            up = await client.upload_jsonl("waited", line, wait=True)
            assert isinstance(up, IngestWaitResponse)
            assert up.job.state == "completed"

    asyncio.run(main())
    assert sieve.get_collection("waited").late_interaction is True
    sieve.delete_collection("waited")


# ---------------------------------------------------------------- async twin


def test_async_client_does_the_same(stack: Stack, sieve: SieveClient) -> None:
    async def main() -> None:
        async with AsyncSieveClient(stack.api, KEY_A) as client:
            assert "kb" in {c.name for c in await client.list_collections()}
            await client.create_collection("async-kb")
            progress: list[UploadProgress] = []
            job = await client.upload_documents("async-kb", DOCS, progress=progress.append)
            assert progress[-1].fraction == 1.0
            done = await client.wait_job(job.job_id, timeout_s=120)
            assert done.counts == {"indexed": 3}
            out = await client.query("async-kb", QUERY, top_n=1)
            assert out.results[0].document_id == "photosynthesis"
            with pytest.raises(NotFoundError):
                await client.get_collection("nope")
            await client.delete_collection("async-kb")

    asyncio.run(main())


def test_the_twins_have_the_same_methods_and_signatures() -> None:
    def public(cls: type) -> dict[str, inspect.Signature]:
        return {
            name: inspect.signature(fn)
            for name, fn in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")
        }

    sync, asyn = public(SieveClient), public(AsyncSieveClient)
    assert set(sync) == set(asyn)
    for name, sig in sync.items():
        other = asyn[name]
        assert list(sig.parameters) == list(other.parameters), name
        for p in sig.parameters.values():
            q = other.parameters[p.name]
            assert (p.kind, p.default, p.annotation) == (q.kind, q.default, q.annotation), name
        assert sig.return_annotation == other.return_annotation, name
        assert inspect.iscoroutinefunction(getattr(AsyncSieveClient, name)) or name == "close"


# ---------------------------------------------------------------- no drift from the API


_REQUESTS: list[type[BaseModel]] = [
    client_models.CollectionCreateRequest,
    client_models.CollectionUpdateRequest,
    client_models.ReindexRequest,
    client_models.QueryRequest,
    client_models.MultiQueryRequest,
    client_models.QueryPolicy,
    client_models.FeedbackRequest,
    client_models.QueryLogRequest,
    client_models.WebhookCreateRequest,
]
_RESPONSES: list[type[BaseModel]] = [
    client_models.CollectionResponse,
    client_models.IngestAcceptedResponse,
    client_models.IngestWaitResponse,
    client_models.DocumentResponse,
    client_models.DocumentsPageResponse,
    client_models.JobResponse,
    client_models.QueryResponse,
    client_models.EvaluationReport,
    client_models.PolicyResponse,
    client_models.FeedbackResponse,
    client_models.QueryLogConfig,
    client_models.QueryLogResponse,
    client_models.QueryLogEntry,
    client_models.QueryLogEntriesResponse,
    client_models.WebhookResponse,
    client_models.WebhookCreatedResponse,
    client_models.WebhooksResponse,
    client_models.WebhookDeliveriesResponse,
    client_models.SnapshotResponse,
    client_models.RestoreResponse,
]
# Bodies the API documents without a schema of their own (JSONResponse / dict routes).
_UNDOCUMENTED = {"DocumentDeletedResponse", "ModelInfo"}
_FRAMEWORK = {"HTTPValidationError", "ValidationError", "Body_upload_documents"}


def test_client_models_match_the_live_openapi(stack: Stack) -> None:
    spec = httpx.get(f"{stack.api}/openapi.json", timeout=30).json()
    server: dict[str, dict[str, object]] = {}
    for name, schema in spec["components"]["schemas"].items():
        server.setdefault(component_name(name), schema)
    ours = {**model_schemas(_REQUESTS, "validation"), **model_schemas(_RESPONSES, "serialization")}
    enums = {
        "QueryMode": client_models.QueryMode,
        "DocStatus": client_models.DocStatus,
        "WebhookEvent": client_models.WebhookEvent,
    }
    for name, enum in enums.items():
        assert shape(server[name]) == {"enum": frozenset(e.value for e in enum)}, name
    assert set(ours) | set(enums) == set(server) - _FRAMEWORK, "a model on one side only"
    for name, schema in ours.items():
        assert shape(schema) == shape(server[name]), f"{name} drifted from the API"
    exported = {
        n for n in client_models.__all__ if isinstance(getattr(client_models, n), type)
    } - set(enums)
    assert exported - set(ours) == _UNDOCUMENTED
    # The request bodies the routes declare are the ones the client sends.
    paths = spec["paths"]
    body = paths["/v1/collections/{name}/query"]["post"]["requestBody"]["content"]
    assert component_name(body["application/json"]["schema"]["$ref"]) == "QueryRequest"
    body = paths["/v1/query"]["post"]["requestBody"]["content"]
    assert component_name(body["application/json"]["schema"]["$ref"]) == "MultiQueryRequest"


def test_json_bodies_the_client_sends_are_what_the_api_reads(sieve: SieveClient) -> None:
    # A round trip through the server's own parser: every knob set at once is accepted.
    out = sieve.query(
        "kb",
        QUERY,
        top_k=20,
        top_n=3,
        min_score=0.0,
        filter={"document_ids": ["photosynthesis", "espresso"], "page": {"gte": 0}},
        mode="hybrid",
        rerank=True,
        rerank_model="cross-encoder/ms-marco-MiniLM-L-12-v2",
        final="fusion",
        on_rerank_error="open",
    )
    assert {h.document_id for h in out.results} <= {"photosynthesis", "espresso"}
    assert json.loads(out.model_dump_json())["rerank"]["final"] == "fusion"


# ---------------------------------------------------------------- defaults and every route


def test_the_environment_names_the_api_and_the_key(
    stack: Stack, sieve: SieveClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the CLI reads them: an explicit argument, then SIEVE_URL / SIEVE_API_KEY, then the default.
    monkeypatch.setenv("SIEVE_URL", stack.api)
    monkeypatch.setenv("SIEVE_API_KEY", KEY_A)
    with SieveClient() as from_env:
        assert from_env.base_url == stack.api.rstrip("/")
        assert "kb" in {c.name for c in from_env.list_collections()}
    with SieveClient(api_key=KEY_B) as explicit:
        assert "kb" not in {c.name for c in explicit.list_collections()}
    with SieveClient(api_key="") as keyless, pytest.raises(AuthenticationError):
        keyless.list_collections()  # an explicit empty key sends none
    monkeypatch.delenv("SIEVE_URL")
    with SieveClient() as default:
        assert default.base_url == "http://127.0.0.1:8000"


def test_retrievers_read_the_environment_and_refuse_unknown_keywords(
    stack: Stack, sieve: SieveClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sieve_client.langchain import SieveRetriever as LangChainRetriever  # noqa: PLC0415
    from sieve_client.llamaindex import SieveRetriever as LlamaIndexRetriever  # noqa: PLC0415

    monkeypatch.setenv("SIEVE_URL", stack.api)
    monkeypatch.setenv("SIEVE_API_KEY", KEY_A)
    retriever = LangChainRetriever(collection="kb", top_n=1)
    try:
        assert retriever.invoke(QUERY)[0].metadata["document_id"] == "photosynthesis"
    finally:
        retriever.close()
    # `url=` used to be dropped silently, and the retriever talked to 127.0.0.1:8000.
    with pytest.raises(TypeError, match=r"'url' \(did you mean 'api_url'\?\)"):
        LangChainRetriever(collection="kb", url=stack.api)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="url"):
        LlamaIndexRetriever("kb", url=stack.api)  # type: ignore[call-arg]


def test_document_images_are_fetched_and_text_documents_have_none(
    sieve: SieveClient,
) -> None:
    from tests.drawn import draw_page, encode  # noqa: PLC0415

    png = encode(draw_page(["The lighthouse keeper logged every storm."]), "PNG")
    sieve.create_collection("pictures")
    try:
        job = sieve.upload_files("pictures", [("keeper.png", png)])
        assert sieve.wait_job(job.job_id, timeout_s=120).counts == {"indexed": 1}
        image = sieve.get_document_image("pictures", "keeper.png")
        assert (image.data, image.media_type) == (png, "image/png")
        assert image.width == 1000
        assert image.height is not None
        with pytest.raises(NotFoundError) as no_page:
            sieve.get_document_image("pictures", "keeper.png", page=2)
        assert no_page.value.status == 404
    finally:
        sieve.delete_collection("pictures")
    with pytest.raises(NotFoundError) as text_only:
        sieve.get_document_image("kb", "photosynthesis")
    assert text_only.value.code == "no_image"
