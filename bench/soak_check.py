"""The soak's final check: the document set the accepted operations imply, against the API.

Three views are compared with the clients' ledgers (last accepted operation per id wins,
deletes remove):

- the document list (``GET .../documents``, every page): each expected document listed
  once, ``indexed``, with the expected content hash; no deleted one listed;
- what queries return (dense recall filtered by document ids, rerank off, up to 500 hits
  per call): each expected document's chunks, each once, as many as its ``chunk_count``,
  each hit's text part of the expected text (and a record's revision in its metadata);
  no chunk of a deleted document;
- the store's point count (``GET /v1/collections/{name}``: ``chunks``) against the sum of
  the listed chunk counts: points a query filter would hide (a tombstoned document's
  leftovers) still show here.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.soak_mix import Expected, Ledger, normalised

__all__ = ["EXPIRED", "CheckResult", "check_final_state", "wait_jobs"]

_TERMINAL_WAIT_POLL_S = 1.0
_MAX_HITS = 500


# A job that is gone under retention had ended: only finished jobs expire.
EXPIRED = "expired"


def wait_jobs(
    api: httpx.Client, job_ids: list[str], timeout_s: float, *, jobs_expire: bool = False
) -> dict[str, int]:
    """Poll every job until it has ended or ``timeout_s`` passed; its final states, counted.

    A job still ``queued``/``running`` at the deadline counts under its state. With
    ``jobs_expire`` (a retention is set), a ``job_not_found`` counts as ``expired``.
    """
    deadline = time.monotonic() + timeout_s
    states: dict[str, str] = {}
    pending = list(dict.fromkeys(job_ids))
    while pending:
        job_id = pending[0]
        resp = api.get(f"/v1/jobs/{job_id}")
        if resp.status_code == 200:
            state = resp.json()["state"]
        elif jobs_expire and resp.status_code == 404:
            state = EXPIRED
        else:
            state = f"HTTP {resp.status_code}"
        if state in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(_TERMINAL_WAIT_POLL_S)
            continue
        states[job_id] = state
        pending.pop(0)
    return dict(Counter(states.values()))


@dataclass
class CheckResult:
    """What the final check found (every list holds document ids)."""

    expected_live: int = 0
    expected_deleted: int = 0
    uncertain: int = 0
    listed: int = 0
    lost_in_list: list[str] = field(default_factory=list)
    not_indexed: dict[str, str] = field(default_factory=dict)
    wrong_content: list[str] = field(default_factory=list)
    resurrected_in_list: list[str] = field(default_factory=list)
    duplicated_in_list: list[str] = field(default_factory=list)
    unknown_in_list: list[str] = field(default_factory=list)
    lost_in_query: list[str] = field(default_factory=list)
    resurrected_in_query: list[str] = field(default_factory=list)
    duplicated_in_query: list[str] = field(default_factory=list)
    stale_chunks: list[str] = field(default_factory=list)
    store_points: int = 0
    listed_chunks: int = 0
    unexpected_failures: dict[str, str] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return len(set(self.lost_in_list) | set(self.lost_in_query))

    @property
    def resurrected(self) -> int:
        return len(set(self.resurrected_in_list) | set(self.resurrected_in_query))

    @property
    def duplicated(self) -> int:
        return len(set(self.duplicated_in_list) | set(self.duplicated_in_query))

    @property
    def wrong(self) -> int:
        """Documents present with the wrong content, not indexed, or with stale chunks."""
        return len(set(self.wrong_content) | set(self.not_indexed) | set(self.stale_chunks))

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.resurrected
            or self.duplicated
            or self.wrong
            or self.unknown_in_list
            or self.store_points != self.listed_chunks
            or self.unexpected_failures
        )


def _list_all(api: httpx.Client, docs_url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = api.get(docs_url, params={"offset": len(out), "limit": 1000})
        page.raise_for_status()
        body = page.json()
        out += body["documents"]
        if not body["documents"] or len(out) >= body["total"]:
            return out


def _hits(api: httpx.Client, query_url: str, doc_ids: list[str]) -> list[dict[str, Any]]:
    body = {
        "query": "soak final check",
        "mode": "dense",
        "rerank": False,
        "top_k": _MAX_HITS,
        "top_n": _MAX_HITS,
        "filter": {"document_ids": doc_ids},
    }
    resp = api.post(query_url, json=body)
    resp.raise_for_status()
    results: list[dict[str, Any]] = resp.json()["results"]
    return results


def _query_batches(ids: list[str], chunks: dict[str, int]) -> list[list[str]]:
    """Ids grouped so that each group's expected hits stay well under one call's 500."""
    batches: list[list[str]] = [[]]
    load = 0
    for doc_id in ids:
        n = max(1, chunks.get(doc_id, 1))
        if batches[-1] and (load + n > _MAX_HITS * 0.6 or len(batches[-1]) >= 100):
            batches.append([])
            load = 0
        batches[-1].append(doc_id)
        load += n
    return [b for b in batches if b]


def _hits_by_doc(
    api: httpx.Client, query_url: str, ids: list[str], chunks: dict[str, int]
) -> dict[str, list[dict[str, Any]]]:
    by_doc: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for batch in _query_batches(ids, chunks):
        for hit in _hits(api, query_url, batch):
            by_doc.setdefault(hit["document_id"], []).append(hit)
    # Recall is approximate once an index exists: ask again, alone, for any doc that looks off.
    for doc_id in ids:
        if len(by_doc[doc_id]) != chunks.get(doc_id, 0):
            by_doc[doc_id] = _hits(api, query_url, [doc_id])
    return by_doc


def _stale(hits: list[dict[str, Any]], want: Expected) -> bool:
    for hit in hits:
        if normalised(hit["text"]) not in want.text:
            return True
        if want.rev is not None and (hit.get("metadata") or {}).get("soak") != want.rev:
            return True
    return False


def check_final_state(
    api: httpx.Client, collection: str, ledgers: list[Ledger], settle_s: float = 60.0
) -> CheckResult:
    """Compare the API's documents, query hits and store count with the ledgers."""
    live: dict[str, Expected] = {}
    deleted: set[str] = set()
    uncertain: set[str] = set()
    res = CheckResult()
    for ledger in ledgers:
        live.update(ledger.live)
        deleted |= ledger.deleted
        uncertain |= ledger.uncertain
        res.unexpected_failures.update(ledger.unexpected_failures)
    live = {k: v for k, v in live.items() if k not in uncertain}
    deleted -= uncertain
    res.expected_live, res.expected_deleted, res.uncertain = len(live), len(deleted), len(uncertain)

    docs_url = f"/v1/collections/{collection}/documents"
    listed = _list_all(api, docs_url)
    res.listed = len(listed)
    seen = Counter(d["id"] for d in listed)
    res.duplicated_in_list = sorted(i for i, n in seen.items() if n > 1)
    by_id = {d["id"]: d for d in listed}
    for doc_id, want in live.items():
        doc = by_id.get(doc_id)
        if doc is None:
            res.lost_in_list.append(doc_id)
        elif doc["status"] != "indexed":
            res.not_indexed[doc_id] = f"{doc['status']}: {doc.get('error')}"
        elif doc["content_hash"] != want.content_hash:
            res.wrong_content.append(doc_id)
    res.resurrected_in_list = sorted(i for i in deleted if i in by_id)
    res.unknown_in_list = sorted(i for i in by_id if i not in live and i not in deleted | uncertain)

    chunks = {d["id"]: int(d["chunk_count"]) for d in listed}
    query_url = f"/v1/collections/{collection}/query"
    hits = _hits_by_doc(api, query_url, sorted(live) + sorted(deleted), chunks)
    for doc_id, want in live.items():
        got = hits.get(doc_id, [])
        ids = Counter(h["chunk_id"] for h in got)
        if not got:
            res.lost_in_query.append(doc_id)
        elif any(n > 1 for n in ids.values()) or len(ids) > chunks.get(doc_id, 0):
            res.duplicated_in_query.append(doc_id)
        elif _stale(got, want):
            res.stale_chunks.append(doc_id)
    res.resurrected_in_query = sorted(i for i in deleted if hits.get(i))

    # Deletes and stale-chunk removals are store writes that no job waits for: let them land.
    res.listed_chunks = sum(chunks[i] for i in chunks if by_id[i]["status"] == "indexed")
    deadline = time.monotonic() + settle_s
    while True:
        info = api.get(f"/v1/collections/{collection}").raise_for_status().json()
        res.store_points = int(info["chunks"] or 0)
        if res.store_points == res.listed_chunks or time.monotonic() > deadline:
            return res
        time.sleep(1.0)
