"""``sieve tune DATASET_DIR -c C``: choose a collection's query policy by cross-validation.

Judgments come from a BEIR directory's qrels, from feedback, or (``--judge MODEL``) from a
chat model grading the fetched candidates of queries from any of those, ``--queries FILE``
or the collection's query log (``--from-query-log``); every source feeds the same
cross-validated choice.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.cli.options import DEFAULT_URL, ApiKey, ApiUrl, open_client

if TYPE_CHECKING:
    from query import RankPlan
    from services.cli.tuning import QueryCandidates

__all__ = ["tune"]


def tune(
    dataset: Annotated[
        Path | None,
        typer.Argument(
            exists=True, file_okay=False, help="BEIR layout directory (not with --feedback)."
        ),
    ] = None,
    *,
    collection: Annotated[str, typer.Option("--collection", "-c", help="The collection.")],
    apply: Annotated[bool, typer.Option(help="Store the chosen policy on the collection.")] = False,
    feedback: Annotated[
        bool, typer.Option(help="Judged queries from POST .../feedback instead of qrels.")
    ] = False,
    folds: Annotated[int, typer.Option(min=2, max=20, help="Cross-validation folds.")] = 5,
    holdout: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.9,
            help="Keep this share of the judged queries out of tuning, scored last.",
        ),
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the folds and the holdout split.")] = 13,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Only the first N judged queries.")
    ] = None,
    fetch_depth: Annotated[
        int, typer.Option(min=1, max=200, help="Candidates the cross-encoder scores per query.")
    ] = 50,
    cache: Annotated[
        Path | None,
        typer.Option(help="JSONL of fetched candidates: reused if present, else written."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Queries in flight.")] = 2,
    queries_file: Annotated[
        Path | None,
        typer.Option(
            "--queries",
            exists=True,
            dir_okay=False,
            help="Queries to tune on (one a line, or JSONL with query/text), for --judge.",
        ),
    ] = None,
    from_query_log: Annotated[
        bool,
        typer.Option(
            help="Queries from the collection's query log (sieve query-log enable), for --judge."
        ),
    ] = False,
    max_queries: Annotated[
        int | None,
        typer.Option(
            min=1, help="--from-query-log: the N most often logged queries (ties: most recent)."
        ),
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option(help="Grade the candidates with this chat model instead of qrels/feedback."),
    ] = None,
    judge_url: Annotated[
        str | None,
        typer.Option(
            envvar="SIEVE_JUDGE_URL",
            help="OpenAI-compatible base URL of the judge (default: SIEVE_MODEL_BASE_URL); "
            "its key: SIEVE_JUDGE_API_KEY, else SIEVE_MODEL_API_KEY.",
        ),
    ] = None,
    judge_budget_tokens: Annotated[
        int,
        typer.Option(min=1, max=100_000_000, help="Most tokens (estimated) the judge may be sent."),
    ] = 200_000,
    judge_depth: Annotated[
        int, typer.Option(min=1, max=50, help="Documents judged a query, from recall and rerank.")
    ] = 10,
    judge_concurrency: Annotated[
        int, typer.Option(min=1, max=16, help="Judge requests in flight.")
    ] = 4,
    judge_cache: Annotated[
        Path | None,
        typer.Option(
            help="JSONL of the judge's answers (default: beside --cache); reused on re-runs."
        ),
    ] = None,
    late: Annotated[
        bool,
        typer.Option(
            help="Also score late interaction (token vectors from the hub for the fetched "
            "candidates) when the collection lacks it; --apply then adds the stage if it pays."
        ),
    ] = True,
    reindex_timeout: Annotated[
        float,
        typer.Option(
            min=1.0, help="--apply: seconds to wait for a re-index that adds/removes late."
        ),
    ] = 3600.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    api_url: ApiUrl = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Fetch every judged query's candidates once, score a grid of policies offline, choose one.

    Prints the cost-quality frontier (nDCG@10, Recall@100, p50 ms a query, rerank tokens a
    query) and the k-fold cross-validated nDCG@10 of the choice; ``--apply`` stores it.
    """
    from sieve_client import SieveClientError  # noqa: PLC0415

    from services.cli.reporting import api_error_message  # noqa: PLC0415

    sources = sum([dataset is not None, feedback, queries_file is not None, from_query_log])
    unjudged = queries_file is not None or from_query_log
    if sources != 1 or (unjudged and judge is None):
        typer.echo(
            "sieve tune: give a DATASET_DIR or --feedback (one of them), or --queries FILE "
            "or --from-query-log with --judge MODEL",
            err=True,
        )
        raise typer.Exit(code=2)
    judge_opts = None
    if judge is not None:
        judge_opts = _JudgeOptions(
            model=judge,
            url=judge_url,
            budget_tokens=judge_budget_tokens,
            depth=judge_depth,
            concurrency=judge_concurrency,
            cache=judge_cache
            or (cache.with_name(cache.stem + ".judge.jsonl") if cache is not None else None),
        )
    try:
        with open_client(api_url, api_key) as client:
            report = _run(
                client,
                dataset,
                collection,
                apply=apply,
                folds=folds,
                holdout=holdout,
                seed=seed,
                limit=limit,
                fetch_depth=fetch_depth,
                cache=cache,
                concurrency=concurrency,
                quiet=as_json,
                queries_file=queries_file,
                query_log=(max_queries or 0) if from_query_log else None,
                judge=judge_opts,
                late=late,
                reindex_timeout=reindex_timeout,
            )
    except SieveClientError as exc:
        typer.echo(f"sieve tune: {api_error_message(exc)} ({exc.code})", err=True)
        raise typer.Exit(code=1) from None
    except ValueError as exc:
        typer.echo(f"sieve tune: {exc}", err=True)
        raise typer.Exit(code=1) from None
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report)


@dataclass(frozen=True)
class _JudgeOptions:
    model: str
    url: str | None
    budget_tokens: int
    depth: int
    concurrency: int
    cache: Path | None


def load_queries(path: Path) -> dict[str, str]:
    """``--queries FILE``: one query a line, or JSON lines with ``query``/``text`` (and ``_id``).

    A query without an id gets the one feedback uses (``indexing.feedback.query_id``).

    Raises:
        ValueError: a JSON line without a query text.
    """
    from indexing.feedback import query_id  # noqa: PLC0415

    out: dict[str, str] = {}
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            text = line.strip()
            if not text:
                continue
            qid: str | None = None
            if text.startswith("{"):
                row = json.loads(text)
                text = str(row.get("query") or row.get("text") or "").strip()
                if not text:
                    raise ValueError(f"{path.name} line {n}: no query or text field")
                raw_id = row.get("_id", row.get("id"))
                qid = None if raw_id is None else str(raw_id)
            out[qid or query_id(text)] = text
    return out


def logged_queries(client: Any, collection: str, *, most: int | None = None) -> dict[str, str]:
    """``--from-query-log``: the collection's logged queries by id, the ``most`` most often
    seen first (ties: the most recently seen); all of them when ``most`` is None.

    Raises:
        ValueError: the log is off or holds no query.
    """
    entries: list[Any] = []
    offset: int | None = 0
    while offset is not None:
        page = client.list_query_log(collection, offset=offset, limit=1000)
        entries += page.entries
        offset = page.next_offset
    if not entries:
        raise ValueError(
            f"the query log of {collection!r} holds no queries (turn it on with "
            f"`sieve query-log enable -c {collection}` and let it see some traffic)"
        )
    # Newest first from the API; a stable sort keeps that order among equal counts.
    entries.sort(key=lambda e: -e.count)
    return {e.id: e.query for e in entries[:most]}


def _judged(client: Any, dataset: Path | None, collection: str) -> tuple[dict[str, str], Any]:
    if dataset is not None:
        from services.cli.evaluation import load_beir  # noqa: PLC0415

        data = load_beir(dataset)
        return data.queries, data.qrels
    from indexing.feedback import query_id  # noqa: PLC0415

    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for item in client.list_feedback(collection).judgments:
        qid = query_id(item.query)
        queries[qid] = item.query
        qrels.setdefault(qid, {})[item.document_id] = int(item.relevant)
    # A query with no relevant document cannot rank anything better or worse.
    keep = {q for q, docs in qrels.items() if any(docs.values())}
    return {q: t for q, t in queries.items() if q in keep}, {q: qrels[q] for q in keep}


def _run(
    client: Any,
    dataset: Path | None,
    collection: str,
    *,
    apply: bool,
    folds: int,
    holdout: float,
    seed: int,
    limit: int | None,
    fetch_depth: int,
    cache: Path | None,
    concurrency: int,
    quiet: bool,
    queries_file: Path | None = None,
    query_log: int | None = None,
    judge: _JudgeOptions | None = None,
    late: bool = True,
    reindex_timeout: float = 3600.0,
) -> dict[str, Any]:
    """``query_log``: take the queries from the collection's log (0: all, N: the N most
    often seen). ``late``: score late interaction offline when the collection lacks it."""
    from rich.console import Console  # noqa: PLC0415

    from services.cli import tuning  # noqa: PLC0415

    console = Console(stderr=True, quiet=quiet)
    has_late = bool(client.get_collection(collection).late_interaction)
    qrels: dict[str, dict[str, int]] = {}
    if queries_file is not None:
        queries = load_queries(queries_file)
    elif query_log is not None:
        queries = logged_queries(client, collection, most=query_log or None)
    else:
        queries, qrels = _judged(client, dataset, collection)
    qids = sorted(queries)[:limit] if limit else sorted(queries)
    items = _fetch(
        client,
        collection,
        {q: queries[q] for q in qids},
        cache=cache,
        fetch_depth=fetch_depth,
        concurrency=concurrency,
        console=console,
        # the judge reads passages, the offline late stage chunk texts: older caches lack them
        need_texts=judge is not None,
        need_chunks=late and not has_late,
    )
    late_cost: tuning.LateCost | None = None
    late_note = None
    if late and not has_late:
        items, late_cost, late_note = _late_offline(items, console=console)
        if late_cost is not None and late_cost.encoded and cache is not None:
            tuning.save_candidates(cache, items)
    judge_report = None
    reference = None
    if judge is not None:
        reference = {q: qrels[q] for q in qids if q in qrels} if dataset is not None else None
        judge_report = _judge(items, judge, reference=reference, console=console, quiet=quiet)
        qrels = judge_report.qrels
    choice = choose(
        items,
        {q: qrels[q] for q in qids if q in qrels},
        folds=folds,
        holdout=holdout,
        seed=seed,
        fetch_depth=fetch_depth,
        reference=reference,
        console=console,
        has_late=has_late,
        late_cost=late_cost,
    )
    report: dict[str, Any] = {"collection": collection, **choice.report}
    if late_note is not None:
        report["late_interaction"]["note"] = late_note
    if judge_report is not None:
        report["judge"] = judge_report.to_json()
    held = choice.held
    if apply:
        report["applied"] = _apply(
            client,
            collection,
            None if choice.kept_default else choice.chosen,
            {
                "by": "sieve tune" + (f" --judge {judge.model}" if judge is not None else ""),
                "cv_ndcg@10": report["cv_ndcg@10"],
                "folds": folds,
                "queries": len(choice.tuned),
                "candidates": report["candidates"],
            },
        )
        report["reindex"] = _apply_stage(
            client,
            collection,
            choice.chosen,
            has_late=has_late,
            timeout_s=reindex_timeout,
            console=console,
        )
        if held:
            report["held_out"]["api"] = _api_ndcg(
                client, collection, queries=queries, qrels=qrels, held=held, concurrency=concurrency
            )
    return report


def _fetch(
    client: Any,
    collection: str,
    wanted: dict[str, str],
    *,
    cache: Path | None,
    fetch_depth: int,
    concurrency: int,
    console: Any,
    need_texts: bool,
    need_chunks: bool,
) -> list[QueryCandidates]:
    """The candidates of ``wanted``: from ``cache`` when it holds them (with what this run
    needs), the rest fetched through the API (and the cache rewritten)."""
    from rich.progress import Progress  # noqa: PLC0415

    from core.settings import RerankSettings  # noqa: PLC0415
    from services.cli import tuning  # noqa: PLC0415

    items: list[tuning.QueryCandidates] = []
    if cache is not None and cache.is_file():
        items = [q for q in tuning.load_candidates(cache) if q.qid in wanted]
        items = [q for q in items if (q.texts or not need_texts)]
        items = [q for q in items if (q.chunk_texts or not need_chunks)]
    missing = {q: t for q, t in wanted.items() if q not in {i.qid for i in items}}
    if missing:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("fetching candidates", total=len(missing))
            items += tuning.fetch_all(
                lambda body: client.query_raw(collection, body, log=False),
                missing,
                fetch_depth=fetch_depth,
                document_tokens=RerankSettings().document_tokens,
                concurrency=concurrency,
                progress=lambda n: bar.update(task, completed=n),
            )
        if cache is not None:
            tuning.save_candidates(cache, items)
    return items


def _late_offline(
    items: list[QueryCandidates], *, console: Any
) -> tuple[list[QueryCandidates], Any, str | None]:
    """MaxSim over the fetched candidates with the late encoder a re-index would use (the
    server's ``SIEVE_MODEL_LATE_MODEL``, from the same hub); the hub failing or not serving
    it is a note, not an error: tune then compares policies without late interaction."""
    from core.errors import SieveError  # noqa: PLC0415
    from core.settings import IngestSettings, ModelSettings  # noqa: PLC0415
    from services.cli import tuning  # noqa: PLC0415
    from services.wiring import build_embeddings  # noqa: PLC0415

    models = ModelSettings()
    encoder = build_embeddings(models, IngestSettings()).for_model(models.late_model)
    if any(not q.late_offline for q in items):
        console.print(f"scoring late interaction offline with {models.late_model}")
    try:
        scored, cost = tuning.score_late_offline(items, encoder.embed_tokens)
    except SieveError as exc:
        return items, None, f"late interaction not evaluated: {exc.message}"
    return scored, cost, None


def _apply_stage(
    client: Any,
    collection: str,
    chosen: RankPlan,
    *,
    has_late: bool,
    timeout_s: float,
    console: Any,
) -> dict[str, Any] | None:
    """Start the re-index that adds late interaction when the applied plan uses it and the
    collection lacks it (or removes it when the collection has it and the plan does not),
    and wait for it. The policy is stored first: a late weight on a collection without the
    stage is ignored by the server until the re-index switches, so the two agree from then.
    None: the collection already has the stages the plan uses."""
    wants = chosen.late_weight > 0
    if wants == has_late:
        return None
    job = client.reindex_collection(collection, late_interaction=wants)
    verb = "adds" if wants else "removes"
    console.print(f"re-index {job.id} {verb} late interaction on {collection!r}; waiting")
    done = client.wait_job(job.id, timeout_s=timeout_s)
    return {"job_id": job.id, "late_interaction": wants, "state": done.state}


def _judge(
    items: list[QueryCandidates],
    opts: _JudgeOptions,
    *,
    reference: dict[str, dict[str, int]] | None,
    console: Any,
    quiet: bool,
) -> Any:
    import os  # noqa: PLC0415

    from rich.progress import Progress  # noqa: PLC0415

    from core.settings import ModelSettings  # noqa: PLC0415
    from services.cli.judge import JudgeClient, first_stage_plan, judge_candidates  # noqa: PLC0415

    models = ModelSettings()
    key = os.environ.get("SIEVE_JUDGE_API_KEY") or (
        models.api_key.get_secret_value() if models.api_key is not None else None
    )
    recall = first_stage_plan()
    if opts.cache is None:
        console.print("note: no --cache or --judge-cache: the judge's answers are not kept")
    with (
        JudgeClient(opts.url or str(models.base_url), opts.model, api_key=key) as judge,
        Progress(console=console, transient=True, disable=quiet) as bar,
    ):
        task = bar.add_task(f"judging with {opts.model}", total=None)
        return judge_candidates(
            items,
            judge,
            recall=recall,
            depth=opts.depth,
            budget_tokens=opts.budget_tokens,
            cache=opts.cache,
            concurrency=opts.concurrency,
            reference=reference,
            progress=lambda n, total: bar.update(task, completed=n, total=total),
        )


@dataclass
class Choice:
    """What :func:`choose` decided: the report's rows, the plan, the split."""

    report: dict[str, Any]
    chosen: RankPlan
    kept_default: bool
    tuned: list[str]
    held: list[str]
    plans: dict[str, RankPlan]


def choose(
    items: list[QueryCandidates],
    qrels: dict[str, dict[str, int]],
    *,
    folds: int,
    holdout: float,
    seed: int,
    fetch_depth: int,
    reference: dict[str, dict[str, int]] | None = None,
    console: Any = None,
    has_late: bool | None = None,
    late_cost: Any = None,
) -> Choice:
    """Split the judged queries, score the grid, cross-validate, keep the default unless beaten.

    The same path for every source of judgments (qrels, feedback, a judge's grades).
    ``has_late``: the collection has the late stage (None: judged by the items' server
    scores); late policies are in the grid when it has, or when tune scored MaxSim offline
    (``late_cost``: what that measured). ``reference``: qrels that did not choose anything
    (a dataset's, when a judge labelled the queries): the held-out rows are also scored
    against them.

    Raises:
        ValueError: too few judged queries for the folds.
    """
    from core.settings import QuerySettings, RerankSettings  # noqa: PLC0415
    from query import resolve_rank  # noqa: PLC0415
    from services.cli import tuning  # noqa: PLC0415

    items = [q for q in items if q.qid in qrels]
    order = sorted(qrels)
    random.Random(seed).shuffle(order)  # noqa: S311 - a reproducible split, not a secret
    n_out = round(len(order) * holdout)
    held, tuned = sorted(order[:n_out]), sorted(order[n_out:])
    if len(tuned) < folds:
        raise ValueError(f"{len(tuned)} judged queries to tune on cannot make {folds} folds")
    rerank_cfg, query_cfg = RerankSettings(), QuerySettings()
    stage = any(q.late for q in items) if has_late is None else has_late
    late = stage or any(q.late_offline for q in items)
    # What the server does for a collection nobody tuned: the plan it resolves with no
    # stored policy (late interaction, when the collection has it, at the settings' weight).
    default = resolve_rank(None, query_cfg, rerank_cfg, top_k=fetch_depth)
    if not stage:
        default = replace(default, late_weight=0.0)
    baseline = replace(default, late_weight=0.0, rerank_depth=min(50, fetch_depth), final="rerank")
    hybrid = replace(default, late_weight=0.0, rerank_depth=0)
    grid = tuning.candidate_grid(
        default, late=late, depths=[d for d in (10, 20, 30, 50) if d <= fetch_depth]
    )
    grid = list(dict.fromkeys([hybrid, baseline, default, *grid]))
    if console is not None:
        console.print(f"scoring {len(grid)} candidate policies over {len(items)} queries")
    scores = tuning.score_candidates(grid, items, qrels, top_k=query_cfg.top_k)
    by_cand = {s.candidate: s for s in scores}
    result = tuning.cross_validate(scores, tuned, folds=folds, seed=seed)
    chosen, kept_default = tuning.unless_default_is_as_good(result, by_cand[default], tuned)
    front = tuning.frontier(scores, tuned)
    plans = {
        "hybrid": hybrid,
        "baseline": baseline,
        "default": default,
        "chosen": chosen.candidate,
        "best in the grid": result.chosen.candidate,
    }
    report: dict[str, Any] = {
        "queries": {"tuned": len(tuned), "held_out": len(held)},
        "candidates": len(grid),
        "late_interaction": _late_report(
            scores,
            tuned,
            held,
            folds=folds,
            seed=seed,
            stage=stage,
            chosen=chosen,
            cost=late_cost,
        )
        if late
        else {"collection_has": stage, "evaluated": False},
        "rerank_coverage": round(chosen.coverage, 4),
        "frontier": [_row(s, tuned, "frontier") for s in front],
        "reference": [
            _row(by_cand[hybrid], tuned, "hybrid recall (first stage)"),
            _row(
                by_cand[baseline], tuned, f"cross-encoder over {baseline.rerank_depth} (baseline)"
            ),
            _row(by_cand[default], tuned, "untuned default"),
        ],
        "chosen": _row(chosen, tuned, "chosen"),
        "best_in_grid": _row(result.chosen, tuned, "best in the grid"),
        "kept_default": kept_default,
        "default_ndcg@10": round(by_cand[default].mean_ndcg(tuned), 4),
        "cv_ndcg@10": round(result.cv_ndcg, 4),
        "folds": folds,
        "fold_choices": result.fold_choices,
    }
    if held:
        report["held_out"] = {
            "queries": len(held),
            "offline": {name: round(by_cand[c].mean_ndcg(held), 4) for name, c in plans.items()},
        }
        if reference is not None:
            truth = {q: reference[q] for q in held if q in reference}
            named = list(dict.fromkeys(plans.values()))
            rescored = tuning.score_candidates(named, items, truth, top_k=query_cfg.top_k)
            by_plan = {s.candidate: s for s in rescored}
            report["held_out"]["offline_against_qrels"] = {
                "queries": len(truth),
                **{name: round(by_plan[c].mean_ndcg(truth), 4) for name, c in plans.items()},
            }
    return Choice(
        report=report,
        chosen=chosen.candidate,
        kept_default=kept_default,
        tuned=tuned,
        held=held,
        plans=plans,
    )


def _late_report(
    scores: list[Any],
    tuned: list[str],
    held: list[str],
    *,
    folds: int,
    seed: int,
    stage: bool,
    chosen: Any,
    cost: Any,
) -> dict[str, Any]:
    """Whether late interaction pays: the cross-validated nDCG@10 of choosing among the
    policies with it and among those without (and, with a holdout, each side's choice
    there), and what it costs."""
    from services.cli import tuning  # noqa: PLC0415

    out: dict[str, Any] = {
        "collection_has": stage,
        "evaluated": "server" if stage else "offline",
        "chosen_uses_late": chosen.candidate.late_weight > 0,
    }
    for side, keep in (("with", True), ("without", False)):
        part = [s for s in scores if (s.candidate.late_weight > 0) == keep]
        if not part:
            continue
        result = tuning.cross_validate(part, tuned, folds=folds, seed=seed)
        out[f"cv_ndcg@10_{side}"] = round(result.cv_ndcg, 4)
        if held:
            out[f"held_out_ndcg@10_{side}"] = round(result.chosen.mean_ndcg(held), 4)
    if cost is not None:
        out["cost"] = {
            "query_ms": round(cost.query_ms, 1),
            "tokens_per_chunk": round(cost.tokens_per_chunk, 1),
            "dim": cost.dim,
            "bytes_per_chunk_float32": round(4 * cost.tokens_per_chunk * cost.dim),
            "encoded_this_run": cost.encoded,
        }
    return out


def _apply(
    client: Any, collection: str, chosen: RankPlan | None, provenance: dict[str, Any]
) -> dict[str, Any] | None:
    """Store the chosen candidate's policy; None (the default won): clear the stored one."""
    if chosen is None:
        client.clear_policy(collection)
        return None
    body: dict[str, Any] = chosen.to_policy(provenance).model_dump(exclude_none=True)
    client.put_policy(collection, body)
    return body


def _api_ndcg(
    client: Any,
    collection: str,
    *,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    held: list[str],
    concurrency: int,
) -> float:
    """nDCG@10 of the held-out queries as the API now answers them (the stored policy)."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    from services.cli.evaluation import evaluate_runs, ranked_documents  # noqa: PLC0415

    def one(qid: str) -> list[str]:
        out = client.query_raw(collection, {"query": queries[qid], "top_n": 10}, log=False)
        return ranked_documents(out["results"], qid)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        ranking = dict(zip(held, pool.map(one, held), strict=True))
    return round(evaluate_runs({q: qrels[q] for q in held}, ranking)["ndcg@10"], 4)


def _row(s: Any, qids: list[str], kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "policy": s.candidate.label(),
        "ndcg@10": round(s.mean_ndcg(qids), 4),
        "recall@100": round(s.recall100, 4),
        "p50_ms": round(s.p50_ms, 1),
        "rerank_tokens": round(s.tokens),
    }


def _print(report: dict[str, Any]) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    console = Console()
    q = report["queries"]
    table = Table(
        title=f"{report['collection']}: {report['candidates']} policies, {q['tuned']} tuned queries"
        " (p50 ms and tokens are modelled: measured embed+recall + pairs x measured ms a pair)"
    )
    for col in ("", "policy", "nDCG@10", "Recall@100", "p50 ms", "rerank tokens"):
        table.add_column(col, justify="left" if col in ("", "policy") else "right")
    for row in [*report["reference"], *report["frontier"], report["chosen"]]:
        table.add_row(
            row["kind"],
            row["policy"],
            f"{row['ndcg@10']:.4f}",
            f"{row['recall@100']:.4f}",
            f"{row['p50_ms']:.0f}",
            str(row["rerank_tokens"]),
        )
    console.print(table)
    if "judge" in report:
        j = report["judge"]
        grades = ", ".join(f"{k}: {v}" for k, v in j["grades"].items())
        agree = j["agreement_with_reranker"]
        console.print(
            f"judge {j['model']}: {j['pairs']} pairs over {j['queries_judged']} queries "
            f"({j['sent']} sent, {j['cached']} from the cache, {j['unparseable']} unparseable; "
            f"~{j['estimated_tokens_sent']:,} of {j['budget_tokens']:,} budgeted tokens; "
            f"{j['queries_over_budget']} queries over the budget, "
            f"{j['queries_without_answer']} with nothing graded 2+); grades {grades}"
        )
        if agree.get("queries"):
            console.print(
                f"reranker vs judge over {agree['queries']} queries: pairwise agreement "
                f"{agree['pairwise']:.3f}, Kendall tau-b {agree['kendall_tau']:.3f}"
            )
        if j["agreement_with_qrels"]:
            q = j["agreement_with_qrels"]
            console.print(
                f"judge (2+) vs the qrels over {q['pairs']} pairs: accuracy {q['accuracy']:.3f}, "
                f"precision {q['precision']:.3f}, recall {q['recall']:.3f}"
            )
    console.print(
        f"best in the grid: {report['best_in_grid']['policy']}; choosing among the grid "
        f"scores {report['cv_ndcg@10']:.4f} nDCG@10 in {report['folds']}-fold "
        f"cross-validation (fold choices: {len(set(report['fold_choices']))} distinct), "
        f"the untuned default {report['default_ndcg@10']:.4f}"
    )
    if report["kept_default"]:
        console.print(
            "chosen: the untuned default (tuning did not beat it on queries it had not seen)"
        )
    else:
        console.print(f"chosen: {report['chosen']['policy']}")
    if "held_out" in report:
        h = report["held_out"]
        line = ", ".join(f"{k} {v:.4f}" for k, v in h["offline"].items() if v is not None)
        console.print(f"held out ({h['queries']} queries), offline: {line}")
        if "offline_against_qrels" in h:
            truth = h["offline_against_qrels"]
            line = ", ".join(f"{k} {v:.4f}" for k, v in truth.items() if k != "queries")
            console.print(f"held out against the dataset's qrels ({truth['queries']}): {line}")
        if "api" in h:
            console.print(
                f"held out through the API with the applied policy: nDCG@10 {h['api']:.4f}"
            )
    _print_late(console, report)
    if report.get("applied"):
        console.print(f"applied to {report['collection']!r}: {report['applied']}")
    elif "applied" in report:
        console.print(f"{report['collection']!r} follows the server's defaults (policy cleared)")


def _print_late(console: Any, report: dict[str, Any]) -> None:
    late = report["late_interaction"]
    if late.get("evaluated"):
        line = (
            f"late interaction ({late['evaluated']}): cv nDCG@10 with "
            f"{late.get('cv_ndcg@10_with', float('nan')):.4f}, without "
            f"{late.get('cv_ndcg@10_without', float('nan')):.4f}"
        )
        if "held_out_ndcg@10_with" in late:
            line += (
                f"; held out with {late['held_out_ndcg@10_with']:.4f}, without "
                f"{late['held_out_ndcg@10_without']:.4f}"
            )
        pays = "pays: the chosen policy uses it" if late["chosen_uses_late"] else "does not pay"
        console.print(f"{line}; {pays}")
        if "cost" in late:
            c = late["cost"]
            console.print(
                f"late cost: ~{c['query_ms']:.0f} ms a query to encode its token vectors; "
                f"{c['tokens_per_chunk']:.0f} token vectors of {c['dim']} floats a chunk "
                f"(~{c['bytes_per_chunk_float32']:,} bytes float32) to encode and store at ingest"
            )
    if late.get("note"):
        console.print(late["note"])
    if report.get("reindex"):
        r = report["reindex"]
        verb = "adding" if r["late_interaction"] else "removing"
        console.print(f"re-index {r['job_id']} ({verb} late interaction): {r['state']}")
