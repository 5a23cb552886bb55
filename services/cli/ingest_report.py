"""What one ``sieve ingest`` run did: the upload answers, the jobs' progress, the failures
and the final counts (pure, no network)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sieve_client import IngestAcceptedResponse, JobResponse

__all__ = ["Failure", "IngestReport", "JobsProgress"]

# A document in one of these states will not change any more.
_TERMINAL_DOCS = frozenset({"indexed", "failed", "cancelled", "deleted"})
_OPEN_JOBS = frozenset({"queued", "running"})


@dataclass(frozen=True)
class Failure:
    """A document (or a whole batch) that was not indexed, and why."""

    document: str
    reason: str
    message: str = ""


@dataclass(frozen=True)
class JobsProgress:
    """The jobs of a run, summed: documents in total, done, and counts by state."""

    total: int
    done: int
    counts: dict[str, int]
    finished: bool


@dataclass
class IngestReport:
    """Everything a run learned, in the order it learned it."""

    accepted: list[IngestAcceptedResponse] = field(default_factory=list)
    batch_failures: list[Failure] = field(default_factory=list)
    jobs: dict[str, JobResponse] = field(default_factory=dict)

    def job_ids_to_watch(self) -> list[str]:
        """Jobs that hold at least one document (an all-unchanged upload holds none)."""
        return [a.job_id for a in self.accepted if a.documents or a.failed]

    def progress(self) -> JobsProgress:
        """Sum the latest view of every watched job."""
        counts: Counter[str] = Counter()
        total = 0
        finished = True
        for job_id in self.job_ids_to_watch():
            job = self.jobs.get(job_id)
            if job is None:
                finished = False
                continue
            counts.update(job.counts)
            total += job.total
            finished = finished and job.state not in _OPEN_JOBS
        done = sum(n for state, n in counts.items() if state in _TERMINAL_DOCS)
        return JobsProgress(total=total, done=done, counts=dict(counts), finished=finished)

    def failures(self) -> list[Failure]:
        """Every failure, once: a job's error (with its message) wins over the upload's."""
        found: dict[str, Failure] = {}
        for failure in self.batch_failures:
            found[failure.document] = failure
        for accepted in self.accepted:
            for doc_id, reason in accepted.failed.items():
                found.setdefault(doc_id, Failure(doc_id, reason))
        for job in self.jobs.values():
            for doc_id, err in job.errors.items():
                found[doc_id] = Failure(
                    doc_id, err.get("reason", "unknown"), err.get("message", "")
                )
        return sorted(found.values(), key=lambda f: f.document)

    def counts(self) -> dict[str, int]:
        """Indexed, unchanged, failed (and queued or cancelled when there are any)."""
        unchanged = sum(len(a.unchanged) for a in self.accepted)
        failed = len(self.failures())
        if self.jobs:
            by_state = self.progress().counts
            out = {"indexed": by_state.get("indexed", 0), "unchanged": unchanged, "failed": failed}
            for state in ("cancelled", "deleted"):
                if by_state.get(state):
                    out[state] = by_state[state]
            pending = sum(n for s, n in by_state.items() if s not in _TERMINAL_DOCS)
            if pending:
                out["pending"] = pending
            return out
        queued = sum(len(a.documents) for a in self.accepted)
        return {"queued": queued, "unchanged": unchanged, "failed": failed}
