"""What an ingest run reports: progress summed over its jobs, failures once, the counts."""

from __future__ import annotations

from typing import Any

from sieve_client import IngestAcceptedResponse, JobResponse

from services.cli.ingest_report import Failure, IngestReport


def _job(job_id: str, state: str, counts: dict[str, int], **extra: Any) -> JobResponse:
    return JobResponse(
        id=job_id,
        collection="kb",
        kind="ingest",
        state=state,
        counts=counts,
        total=sum(counts.values()),
        documents={},
        created_at=0.0,
        finished_at=None,
        cancelled=False,
        **extra,
    )


def _report() -> IngestReport:
    return IngestReport(
        accepted=[
            IngestAcceptedResponse(
                job_id="j1", documents=["a", "b"], unchanged=["c"], failed={"evil": "unsafe_path"}
            ),
            IngestAcceptedResponse(job_id="j2", documents=[], unchanged=["d", "e"]),
            IngestAcceptedResponse(job_id="j3", documents=["f"]),
        ],
        batch_failures=[Failure("huge.pdf", "payload_too_large", "over the limit")],
    )


def test_all_unchanged_jobs_are_not_watched() -> None:
    assert _report().job_ids_to_watch() == ["j1", "j3"]


def test_without_waiting_the_counts_are_queued_unchanged_failed() -> None:
    report = _report()
    assert report.counts() == {"queued": 3, "unchanged": 3, "failed": 2}
    assert [f.document for f in report.failures()] == ["evil", "huge.pdf"]


def test_progress_sums_jobs_and_finishes_only_when_all_are_done() -> None:
    report = _report()
    report.jobs["j1"] = _job("j1", "running", {"indexed": 1, "embedding": 1, "failed": 1})
    progress = report.progress()
    assert (progress.total, progress.done, progress.finished) == (3, 2, False)
    report.jobs["j3"] = _job("j3", "completed", {"indexed": 1})
    assert report.progress().finished is False
    report.jobs["j1"] = _job(
        "j1",
        "completed_with_errors",
        {"indexed": 2, "failed": 1},
        errors={"evil": {"reason": "unsafe_path", "message": "../evil.txt escapes the root"}},
    )
    progress = report.progress()
    assert (progress.total, progress.done, progress.finished) == (4, 4, True)
    assert progress.counts == {"indexed": 3, "failed": 1}


def test_after_waiting_a_jobs_error_message_wins_and_counts_are_final() -> None:
    report = _report()
    report.jobs["j1"] = _job(
        "j1",
        "completed_with_errors",
        {"indexed": 1, "failed": 2},
        errors={
            "evil": {"reason": "unsafe_path", "message": "escapes the root"},
            "b": {"reason": "empty_document", "message": "no text"},
        },
    )
    report.jobs["j3"] = _job("j3", "running", {"embedding": 1})
    assert report.failures() == [
        Failure("b", "empty_document", "no text"),
        Failure("evil", "unsafe_path", "escapes the root"),
        Failure("huge.pdf", "payload_too_large", "over the limit"),
    ]
    assert report.counts() == {"indexed": 1, "unchanged": 3, "failed": 3, "pending": 1}
