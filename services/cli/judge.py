"""``sieve tune --judge MODEL``: graded relevance labels from a chat model, not from people.

A judge is any OpenAI-compatible ``POST {base}/chat/completions`` model (the IONOS hub
serves them). Each sampled (query, passage) pair gets one request with a graded 0-3
prompt in the style of TREC's LLM assessors (UMBRELA): 0 = nothing to do with the query,
1 = related but does not answer it, 2 = partly answers it, 3 = dedicated to it and
answers it exactly. The answer must be a single digit or ``{"grade": N}``; anything else
is counted as unparseable and the pair stays unjudged (it is never guessed).

Costs are bounded before anything is sent: each pair's tokens are estimated with the
project's one estimate (``reranker.estimate_tokens``) for the prompt plus the answer's
``max_tokens``, and whole queries are admitted in order while the total stays within
``budget_tokens`` (a query judged in part would bias its nDCG). Answers are kept in a
JSONL cache keyed by model + query + passage hash, so a re-run sends nothing it has
sent before; that file is also where the judged pairs live between tunes (the feedback
store holds boolean user judgments, not graded ones, so judge labels stay out of it).
Retries follow ``core.retry``; at most ``concurrency`` requests are in flight.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from core.retry import RETRYABLE_STATUSES, parse_retry_after, retry_delay
from query import RankPlan, rank
from reranker import estimate_tokens, truncate_to_tokens
from services.cli.tuning import QueryCandidates

__all__ = [
    "ANSWER_TOKENS",
    "JudgeClient",
    "JudgeReport",
    "JudgeUnavailable",
    "agreement",
    "first_stage_plan",
    "judge_candidates",
    "parse_grade",
    "prompt_messages",
    "sample_pairs",
]

ANSWER_TOKENS = 16
"""``max_tokens`` asked of the judge: a digit or ``{"grade": 3}`` fits."""

PASSAGE_TOKENS = 1024
"""A passage longer than this (by the estimate) is cut to its head before judging."""

_SYSTEM = (
    "You are a search quality rater evaluating the relevance of passages. Given a query "
    "and a passage, you must provide a score on an integer scale of 0 to 3 with the "
    "following meanings:\n"
    "3 = Perfectly relevant: the passage is dedicated to the query and contains the exact "
    "answer.\n"
    "2 = Highly relevant: the passage has some answer for the query, but the answer may be "
    "a bit unclear, or hidden amongst extraneous information.\n"
    "1 = Related: the passage seems related to the query but does not answer it.\n"
    "0 = Irrelevant: the passage has nothing to do with the query.\n"
    "Assume that you are writing a report on the subject of the topic. Consider the "
    "underlying intent of the search, measure how well the content matches a likely "
    "intent of the query, and how trustworthy the passage is. Answer with a single digit "
    '(0, 1, 2 or 3) or the JSON object {"grade": N}, and nothing else.'
)

_DIGIT = re.compile(r"[0-3]")
_JSON = re.compile(r'\{\s*"grade"\s*:\s*([0-3])\s*\}')


class Grader(Protocol):
    """What :func:`judge_candidates` asks: a model's name and one pair's raw answer."""

    model: str

    def grade(self, query: str, passage: str) -> tuple[str, int | None]:
        """The raw answer and the tokens the model reports using (None: not reported)."""
        ...


class JudgeUnavailable(ValueError):
    """The judge model could not be reached or refused the request (after retries)."""


def prompt_messages(query: str, passage: str) -> list[dict[str, str]]:
    """The chat messages that ask for one pair's grade."""
    passage = truncate_to_tokens(passage, PASSAGE_TOKENS)
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": f"Query: {query}\nPassage: {passage}\nScore:"},
    ]


def pair_tokens(query: str, passage: str) -> int:
    """The budgeted cost of judging one pair: the prompt's estimate plus the answer's cap."""
    prompt = sum(estimate_tokens(m["content"]) for m in prompt_messages(query, passage))
    return prompt + ANSWER_TOKENS


def parse_grade(answer: str) -> int | None:
    """A grade from the judge's answer, strictly: ``"2"`` or ``{"grade": 2}``; else None."""
    text = answer.strip()
    if _DIGIT.fullmatch(text):
        return int(text)
    match = _JSON.fullmatch(text)
    return int(match.group(1)) if match else None


def cache_key(model: str, query: str, passage: str) -> str:
    """The cache key of one judgment: model + query + the passage's hash."""
    digest = hashlib.sha256(passage.encode("utf-8")).hexdigest()
    raw = f"{model}\0{query.strip()}\0{digest}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class JudgeClient:
    """One OpenAI-compatible chat-completions model, called with ``core.retry``'s rule."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        max_retry_after_s: float = 30.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.model = model
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout_s
        )
        self._retries = max_retries
        self._base_s, self._max_s, self._max_after_s = (
            backoff_base_s,
            backoff_max_s,
            max_retry_after_s,
        )
        self._rng = random.Random()  # noqa: S311 - jitter, not a secret

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> JudgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def grade(self, query: str, passage: str) -> tuple[str, int | None]:
        """The judge's raw answer and the tokens it reports using (None: not reported)."""
        body = {
            "model": self.model,
            "messages": prompt_messages(query, passage),
            "temperature": 0,
            "max_tokens": ANSWER_TOKENS,
        }
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                resp = self._http.post("chat/completions", json=body)
            except httpx.TransportError as exc:
                reason = f"the judge model is unreachable ({type(exc).__name__})"
            else:
                if resp.status_code == 200:
                    return _answer(resp)
                if resp.status_code not in RETRYABLE_STATUSES:
                    raise JudgeUnavailable(
                        f"the judge model refused the request (HTTP {resp.status_code})"
                    )
                reason = f"the judge model answered HTTP {resp.status_code}"
                retry_after = parse_retry_after(resp.headers.get("retry-after"))
            delay = retry_delay(
                attempt,
                retry_after=retry_after,
                base_s=self._base_s,
                max_s=self._max_s,
                max_retry_after_s=self._max_after_s,
                rng=self._rng.random,
            )
            if attempt >= self._retries or delay is None:
                raise JudgeUnavailable(f"{reason}, after {attempt + 1} attempts")
            time.sleep(delay)
            attempt += 1


def _answer(resp: httpx.Response) -> tuple[str, int | None]:
    try:
        data = resp.json()
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "", None  # an answer we cannot read: counted as unparseable
    usage = data.get("usage") if isinstance(data, dict) else None
    total = usage.get("total_tokens") if isinstance(usage, dict) else None
    return (content if isinstance(content, str) else ""), (
        int(total) if isinstance(total, int | float) else None
    )


def first_stage_plan() -> RankPlan:
    """The server's untuned recall (no late interaction, no rerank): whose order is judged."""
    from dataclasses import replace  # noqa: PLC0415

    from core.settings import QuerySettings, RerankSettings  # noqa: PLC0415
    from query import resolve_rank  # noqa: PLC0415

    plan = resolve_rank(None, QuerySettings(), RerankSettings(), top_k=50)
    return replace(plan, late_weight=0.0, rerank_depth=0)


@dataclass(frozen=True)
class Pair:
    """One (query, passage) pair to judge; the passage is a chunk of ``document_id``."""

    qid: str
    query: str
    chunk_id: str
    document_id: str
    passage: str


def sample_pairs(item: QueryCandidates, recall: RankPlan, *, depth: int) -> list[Pair]:
    """What to judge for one query: the first ``depth`` documents of recall and of rerank.

    Those are the documents any policy in tune's grid can put in its top 10 (recall's own
    order, or the reranker's over the fetched candidates); a document is judged once, at
    its best chunk (the first in recall order, else the reranker's).
    """
    recall_order = rank(recall, item.legs, top_k=max(depth * 3, 10))
    rerank_order = sorted(item.rerank, key=lambda c: -item.rerank[c])
    out: list[Pair] = []
    for order in (recall_order, rerank_order):
        seen_docs: set[str] = set()
        taken = 0
        for cid in order:
            doc = item.documents.get(cid, cid)
            if doc == item.qid or doc in seen_docs or cid not in item.texts:
                continue
            seen_docs.add(doc)
            taken += 1
            if all(p.document_id != doc for p in out):
                out.append(Pair(item.qid, item.query, cid, doc, item.texts[cid]))
            if taken >= depth:
                break
    return out


@dataclass
class JudgeReport:
    """What the judge said, what it cost, and how far it agrees with the reranker."""

    model: str
    qrels: dict[str, dict[str, int]]
    pairs: int = 0
    sent: int = 0
    cached: int = 0
    unparseable: int = 0
    budget_tokens: int = 0
    estimated_tokens: int = 0
    reported_tokens: int = 0
    queries_judged: int = 0
    queries_over_budget: int = 0
    queries_without_answer: int = 0
    grades: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(4), 0))
    agreement: dict[str, float | int] = field(default_factory=dict)
    qrels_agreement: dict[str, float | int] | None = None

    def to_json(self) -> dict[str, Any]:
        """A plain dict for tune's report."""
        return {
            "model": self.model,
            "pairs": self.pairs,
            "sent": self.sent,
            "cached": self.cached,
            "unparseable": self.unparseable,
            "budget_tokens": self.budget_tokens,
            "estimated_tokens_sent": self.estimated_tokens,
            "reported_tokens": self.reported_tokens,
            "queries_judged": self.queries_judged,
            "queries_over_budget": self.queries_over_budget,
            "queries_without_answer": self.queries_without_answer,
            "grades": {str(k): v for k, v in self.grades.items()},
            "agreement_with_reranker": self.agreement,
            "agreement_with_qrels": self.qrels_agreement,
        }


class _Cache:
    """The judgments file: one JSON line per judged pair, appended as answers arrive."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        if path is not None and path.is_file():
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        row = json.loads(line)
                        self.entries[str(row["key"])] = row

    def add(self, row: dict[str, Any]) -> None:
        with self._lock:
            self.entries[str(row["key"])] = row
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")


def judge_candidates(
    items: Sequence[QueryCandidates],
    judge: Grader,
    *,
    recall: RankPlan,
    depth: int,
    budget_tokens: int,
    cache: Path | None,
    concurrency: int = 4,
    reference: dict[str, dict[str, int]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> JudgeReport:
    """Judge every query's sampled pairs within the budget; graded qrels for tune.

    ``judge`` is a :class:`JudgeClient` (or anything with its shape). A query is kept in
    the qrels when its judged pairs include one that answers it (grade >= 2): a query
    nothing answers cannot rank anything better or worse. ``reference`` (qrels from a
    dataset, when tune has them) adds the judge's agreement with them to the report.
    """
    model = judge.model
    store = _Cache(cache)
    report = JudgeReport(model=model, qrels={}, budget_tokens=budget_tokens)
    planned: list[tuple[QueryCandidates, list[tuple[Pair, str]]]] = []
    to_send: list[tuple[Pair, str, int]] = []
    spent = 0
    for item in items:
        pairs = [
            (p, cache_key(model, p.query, p.passage))
            for p in sample_pairs(item, recall, depth=depth)
        ]
        new = [(p, k, pair_tokens(p.query, p.passage)) for p, k in pairs if k not in store.entries]
        cost = sum(t for _, _, t in new)
        if spent + cost > budget_tokens:
            report.queries_over_budget += 1
            continue
        spent += cost
        to_send.extend(new)
        planned.append((item, pairs))
    report.estimated_tokens = spent

    def one(job: tuple[Pair, str, int]) -> int | None:
        pair, key, _ = job
        answer, used = judge.grade(pair.query, pair.passage)
        store.add(
            {
                "key": key,
                "model": model,
                "query": pair.query,
                "document_id": pair.document_id,
                "grade": parse_grade(answer),
                "source": "judge",
                "at": time.time(),
            }
        )
        return used

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for n, used in enumerate(pool.map(one, to_send), start=1):
            report.reported_tokens += used or 0
            if progress is not None:
                progress(n, len(to_send))
    report.sent = len(to_send)
    judged: dict[str, dict[str, int]] = {}
    for item, pairs in planned:
        grades: dict[str, int] = {}
        for pair, key in pairs:
            report.pairs += 1
            value = store.entries[key].get("grade")
            if value is None:
                report.unparseable += 1
                continue
            grades[pair.document_id] = int(value)
            report.grades[int(value)] += 1
        judged[item.qid] = grades
        if any(g >= 2 for g in grades.values()):
            report.qrels[item.qid] = grades
        else:
            report.queries_without_answer += 1
    report.cached = report.pairs - report.sent
    report.queries_judged = len(planned)
    report.agreement = agreement(items, judged)
    if reference is not None:
        report.qrels_agreement = _qrels_agreement(judged, reference)
    return report


def _pairwise(scores: Sequence[float], grades: Sequence[int]) -> tuple[int, int, int]:
    """(concordant, discordant, ties in score) over pairs with different grades."""
    con = dis = tie = 0
    for i in range(len(grades)):
        for j in range(i + 1, len(grades)):
            if grades[i] == grades[j]:
                continue
            d = (scores[i] - scores[j]) * (grades[i] - grades[j])
            if d > 0:
                con += 1
            elif d < 0:
                dis += 1
            else:
                tie += 1
    return con, dis, tie


def agreement(
    items: Iterable[QueryCandidates], judged: dict[str, dict[str, int]]
) -> dict[str, float | int]:
    """How far the reranker's order agrees with the judge's grades, per query, averaged.

    ``pairwise``: of the judged documents with different grades and a rerank score, the
    share the reranker orders as the judge does (a score tie counts half); ``kendall_tau``:
    Kendall's tau-b between rerank scores and grades. Queries with fewer than two distinct
    grades among reranked documents say nothing and are left out (``queries`` counts the rest).
    """
    pair_shares: list[float] = []
    taus: list[float] = []
    for item in items:
        grades = judged.get(item.qid)
        if not grades:
            continue
        best: dict[str, float] = {}
        for cid, score in item.rerank.items():
            doc = item.documents.get(cid, cid)
            if doc in grades:
                best[doc] = max(score, best.get(doc, float("-inf")))
        docs = sorted(best)
        g = [grades[d] for d in docs]
        s = [best[d] for d in docs]
        if len(set(g)) < 2:
            continue
        con, dis, tie = _pairwise(s, g)
        pair_shares.append((con + tie / 2) / (con + dis + tie))
        taus.append(_tau_b(s, g))
    if not pair_shares:
        return {"queries": 0}
    return {
        "queries": len(pair_shares),
        "pairwise": round(sum(pair_shares) / len(pair_shares), 4),
        "kendall_tau": round(sum(taus) / len(taus), 4),
    }


def _tau_b(x: Sequence[float], y: Sequence[int]) -> float:
    con = dis = tx = ty = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif dx * dy > 0:
                con += 1
            else:
                dis += 1
    denom = ((con + dis + tx) * (con + dis + ty)) ** 0.5
    return (con - dis) / denom if denom else 0.0


def _qrels_agreement(
    judged: dict[str, dict[str, int]], reference: dict[str, dict[str, int]]
) -> dict[str, float | int]:
    """The judge's answers (grade >= 2) against the qrels' relevant (> 0), over judged pairs."""
    tp = fp = fn = tn = 0
    for qid, grades in judged.items():
        truth = reference.get(qid, {})
        for doc, g in grades.items():
            rel, said = truth.get(doc, 0) > 0, g >= 2
            tp += rel and said
            fp += said and not rel
            fn += rel and not said
            tn += not rel and not said
    total = tp + fp + fn + tn
    return {
        "pairs": total,
        "accuracy": round((tp + tn) / total, 4) if total else 0.0,
        "precision": round(tp / (tp + fp), 4) if tp + fp else 0.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 0.0,
    }
