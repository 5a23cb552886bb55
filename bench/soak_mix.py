"""The soak's clients: a weighted mix of API operations, and the ledger of what was accepted.

Each client owns its own document ids (``c<client>-d<n>``), so the operations on one id are
ordered by that client alone and "the last accepted operation wins" is known client-side
without guessing the server's order. Clients run concurrently, so every other race (store
writes of many documents, one worker's batches, queries against documents being replaced
or deleted) still happens. An operation whose outcome the client cannot know (a transport
error or timeout after the request was sent) marks its ids *uncertain*: they are left out
of the final lost/resurrected check, and counted.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.harness import SCIFACT_DIR
from indexing.accept import record_blob
from ingest.documents import ExtractedDocument
from ingest.limits import IngestLimits
from ingest.records import record_to_document

__all__ = [
    "ROUTES",
    "Expected",
    "Ledger",
    "Recorder",
    "SoakClient",
    "TextSource",
    "file_expectation",
    "normalised",
    "record_expectation",
]

# (route label, weight): what one client does, chosen at random per operation.
ROUTES: tuple[tuple[str, int], ...] = (
    ("query (rerank)", 14),
    ("query (no rerank)", 20),
    ("upload json", 10),
    ("upload jsonl", 4),
    ("upload file", 5),
    ("replace json", 8),
    ("replace file", 3),
    ("delete", 7),
    ("job poll", 15),
    ("list documents", 5),
    ("get document", 9),
)
_NON_WORD = re.compile(r"\W+")


def normalised(text: str) -> str:
    """Lower-case letters and digits only: how a hit's text is found in its source text."""
    return _NON_WORD.sub("", text.lower())


@dataclass(frozen=True)
class Expected:
    """What a document must be once its last accepted operation is indexed."""

    content_hash: str  # the API's content_hash (sha256 of the stored blob)
    text: str  # normalised source text: every chunk's text is a part of it
    rev: str | None  # metadata["soak"] for records (their hits carry it); None for files


def record_expectation(record: dict[str, Any]) -> Expected:
    """The expectation for a JSON/JSONL record, hashed exactly as the API stores it."""
    doc = record_to_document(record, "soak", IngestLimits())
    if not isinstance(doc, ExtractedDocument):
        raise SystemExit(f"the soak built an invalid record: {doc}")
    digest = hashlib.sha256(record_blob(doc)).hexdigest()
    return Expected(digest, normalised(doc.text), (record.get("metadata") or {}).get("soak"))


def file_expectation(data: bytes) -> Expected:
    """The expectation for an uploaded text file."""
    return Expected(hashlib.sha256(data).hexdigest(), normalised(data.decode()), None)


@dataclass
class Ledger:
    """One client's accepted operations: the last one per id wins, a delete removes."""

    live: dict[str, Expected] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    uncertain: set[str] = field(default_factory=set)
    jobs: list[str] = field(default_factory=list)
    unexpected_failures: dict[str, str] = field(default_factory=dict)

    def accepted(self, doc_id: str, expected: Expected) -> None:
        """An upload or replace of ``doc_id`` was accepted (202)."""
        self.live[doc_id] = expected
        self.deleted.discard(doc_id)

    def removed(self, doc_id: str) -> None:
        """A delete of ``doc_id`` was accepted (202)."""
        self.live.pop(doc_id, None)
        self.deleted.add(doc_id)

    def unsure(self, doc_ids: list[str]) -> None:
        """The outcome of a request about ``doc_ids`` is unknown (no answer came)."""
        self.uncertain.update(doc_ids)


class Recorder:
    """Requests by route and status, and each route's latencies; shared by the clients."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.statuses: dict[str, Counter[str]] = {}
        self.latencies: dict[str, list[float]] = {}
        self.rerank: Counter[str] = Counter()
        self.error_samples: list[str] = []

    def add(self, route: str, status: str, seconds: float) -> None:
        """Count one answer (or transport error) and its latency."""
        with self._lock:
            self.statuses.setdefault(route, Counter())[status] += 1
            self.latencies.setdefault(route, []).append(seconds * 1000)

    def note_error(self, text: str) -> None:
        """Keep the first few error descriptions for the report."""
        with self._lock:
            if len(self.error_samples) < 20:
                self.error_samples.append(text[:300])

    def count_rerank(self, status: str) -> None:
        """Count a query answer's ``rerank.status``."""
        with self._lock:
            self.rerank[status] += 1


class TextSource:
    """SciFact abstracts (read in place), handed out round-robin; each call the next one."""

    def __init__(self) -> None:
        self._items: list[tuple[str, str]] = []
        with (SCIFACT_DIR / "corpus.jsonl").open() as fh:
            for line in fh:
                if line.strip():
                    rec = json.loads(line)
                    if rec.get("text", "").strip():
                        self._items.append((rec.get("title") or "", rec["text"]))
        self._lock = threading.Lock()
        self._next = 0

    def take(self) -> tuple[str, str]:
        """The next (title, text)."""
        with self._lock:
            item = self._items[self._next % len(self._items)]
            self._next += 1
            return item


@dataclass
class SoakClient:
    """One client: a closed loop of weighted random operations with a short think time."""

    number: int
    api: httpx.Client
    collection: str
    texts: TextSource
    queries: list[str]
    recorder: Recorder
    target_live: int
    think_s: float
    seed: int = 0
    ledger: Ledger = field(default_factory=Ledger)
    _seq: int = 0
    _ids: int = 0
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed * 1000 + self.number)

    # ------------------------------------------------------------------ ids and content
    def new_id(self, suffix: str = "") -> str:
        """An id this client has not used."""
        self._ids += 1
        return f"c{self.number}-d{self._ids}{suffix}"

    def _rev(self) -> str:
        self._seq += 1
        return f"c{self.number}-r{self._seq}"

    def _ids_to_write(self, n: int, *, files: bool = False) -> list[str]:
        """New ids while under the client's share of the corpus, else live ones (replaces).

        A file's id is its name, so files reuse only ids that end in ``.txt``.
        """
        out: list[str] = []
        suffix = ".txt" if files else ""
        for _ in range(n):
            live = sorted(i for i in self.ledger.live if i not in out and i.endswith(suffix))
            if len(self.ledger.live) + len(out) < self.target_live or not live:
                gone = sorted(i for i in self.ledger.deleted - set(out) if i.endswith(suffix))
                if gone and self._rng.random() < 0.3:
                    out.append(self._rng.choice(gone))  # bring a deleted id back
                else:
                    out.append(self.new_id(suffix))
            else:
                out.append(self._rng.choice(live))
        return out

    def record(self, doc_id: str) -> dict[str, Any]:
        """A JSON record: the next SciFact abstract, and a fresh revision in its metadata."""
        title, text = self.texts.take()
        return {"id": doc_id, "title": title, "text": text, "metadata": {"soak": self._rev()}}

    def _file(self) -> bytes:
        title, text = self.texts.take()
        return f"soak revision {self._rev()}\n\n{title}\n\n{text}\n".encode()

    # ------------------------------------------------------------------ the loop
    def run(self, until: float, stop: threading.Event) -> None:
        """Operate until the monotonic clock passes ``until`` or ``stop`` is set."""
        ops: dict[str, Callable[[], None]] = {
            "query (rerank)": lambda: self._query(rerank=True),
            "query (no rerank)": lambda: self._query(rerank=False),
            "upload json": self._upload_json,
            "upload jsonl": self._upload_jsonl,
            "upload file": self._upload_file,
            "replace json": self._replace_json,
            "replace file": self._replace_file,
            "delete": self._delete,
            "job poll": self._job_poll,
            "list documents": self._list,
            "get document": self._get,
        }
        routes = [r for r, _ in ROUTES]
        weights = [w for _, w in ROUTES]
        while time.monotonic() < until and not stop.is_set():
            ops[self._rng.choices(routes, weights)[0]]()
            if self.think_s:
                stop.wait(self._rng.uniform(0, 2 * self.think_s))

    def _send(
        self, route: str, method: str, url: str, unsure: list[str] | None = None, **kw: Any
    ) -> httpx.Response | None:
        start = time.perf_counter()
        try:
            resp = self.api.request(method, url, **kw)
        except httpx.HTTPError as exc:
            self.recorder.add(route, f"error {type(exc).__name__}", time.perf_counter() - start)
            self.recorder.note_error(f"{route}: {type(exc).__name__}: {exc}")
            if unsure:
                self.ledger.unsure(unsure)
            return None
        self.recorder.add(route, str(resp.status_code), time.perf_counter() - start)
        if resp.status_code >= 500:
            self.recorder.note_error(f"{route} {method} {url}: {resp.status_code} {resp.text}")
        return resp

    def _docs(self) -> str:
        return f"/v1/collections/{self.collection}/documents"

    def _accepted(self, resp: httpx.Response | None, expected: dict[str, Expected]) -> None:
        if resp is None or resp.status_code != 202:
            return
        body = resp.json()
        self.ledger.jobs.append(body["job_id"])
        for doc_id in [*body["documents"], *body.get("unchanged", [])]:
            if doc_id in expected:
                self.ledger.accepted(doc_id, expected[doc_id])
        for doc_id, reason in body.get("failed", {}).items():
            self.ledger.unexpected_failures[doc_id] = reason

    def _query(self, *, rerank: bool) -> None:
        route = "query (rerank)" if rerank else "query (no rerank)"
        body = {"query": self._rng.choice(self.queries), "rerank": rerank, "top_n": 10}
        resp = self._send(route, "POST", f"/v1/collections/{self.collection}/query", json=body)
        if resp is not None and resp.status_code == 200:
            self.recorder.count_rerank(resp.json()["rerank"]["status"])

    def _upload_json(self) -> None:
        records = [self.record(i) for i in self._ids_to_write(self._rng.randint(1, 4))]
        expected = {r["id"]: record_expectation(r) for r in records}
        resp = self._send(
            "upload json", "POST", self._docs(), list(expected), json={"documents": records}
        )
        self._accepted(resp, expected)

    def _upload_jsonl(self) -> None:
        records = [self.record(i) for i in self._ids_to_write(self._rng.randint(2, 6))]
        expected = {r["id"]: record_expectation(r) for r in records}
        lines = "".join(
            json.dumps({"_id": r["id"], **{k: r[k] for k in ("title", "text", "metadata")}}) + "\n"
            for r in records
        )
        resp = self._send(
            "upload jsonl",
            "POST",
            self._docs(),
            list(expected),
            content=lines.encode(),
            headers={"Content-Type": "application/x-ndjson"},
        )
        self._accepted(resp, expected)

    def _upload_file(self) -> None:
        files, expected = [], {}
        for doc_id in self._ids_to_write(self._rng.randint(1, 2), files=True):
            data = self._file()
            files.append(("files", (doc_id, data, "text/plain")))
            expected[doc_id] = file_expectation(data)
        resp = self._send("upload file", "POST", self._docs(), list(expected), files=files)
        self._accepted(resp, expected)

    def _live_id(self) -> str | None:
        return self._rng.choice(sorted(self.ledger.live)) if self.ledger.live else None

    def _replace_json(self) -> None:
        doc_id = self._live_id()
        if doc_id is None:
            self._upload_json()
            return
        record = self.record(doc_id)
        body = {k: record[k] for k in ("title", "text", "metadata")}
        resp = self._send("replace json", "PUT", f"{self._docs()}/{doc_id}", [doc_id], json=body)
        self._accepted(resp, {doc_id: record_expectation(record)})

    def _replace_file(self) -> None:
        doc_id = self._live_id()
        if doc_id is None:
            self._upload_file()
            return
        data = self._file()
        name = doc_id if doc_id.endswith(".txt") else f"{doc_id}.txt"
        files = [("files", (name, data, "text/plain"))]
        resp = self._send("replace file", "PUT", f"{self._docs()}/{doc_id}", [doc_id], files=files)
        self._accepted(resp, {doc_id: file_expectation(data)})

    def _delete(self) -> None:
        doc_id = self._live_id()
        if doc_id is None or len(self.ledger.live) < 0.9 * self.target_live:
            self._job_poll()  # keep the corpus near its seeded size
            return
        resp = self._send("delete", "DELETE", f"{self._docs()}/{doc_id}", [doc_id])
        if resp is not None and resp.status_code == 202:
            self.ledger.removed(doc_id)

    def _job_poll(self) -> None:
        if not self.ledger.jobs:
            self._list()
            return
        self._send("job poll", "GET", f"/v1/jobs/{self._rng.choice(self.ledger.jobs[-20:])}")

    def _list(self) -> None:
        offset = self._rng.randint(0, max(0, self.target_live * 8))
        self._send("list documents", "GET", self._docs(), params={"offset": offset, "limit": 50})

    def _get(self) -> None:
        pool = sorted(self.ledger.live) + sorted(self.ledger.deleted)
        if not pool:
            self._list()
            return
        self._send("get document", "GET", f"{self._docs()}/{self._rng.choice(pool)}")
