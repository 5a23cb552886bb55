"""60 collections in the real API process (``sieve api``, the Edge store's owner) cost fewer
than 100 threads and less than 1 GiB: each was 8 threads and ~28 MiB for good (1,602
threads, 5.6 GiB at 200; 480 threads and 1.7 GiB at 60, so 60 already tells the bounded
LRU of open shards, 16 by default, from the old behaviour). ``bench/collections.py``
measures 200."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from indexing.records import store_name_for
from tests.indexing.procstack import proc_stack

pytestmark = pytest.mark.slow

COLLECTIONS = 60


# A fresh stack, an API restart and 60 shard opens: ~1.5 min on 2 loaded cores.
@pytest.mark.timeout(900)
def test_two_hundred_collections_cost_bounded_threads_and_memory(
    hub_url: str, tmp_path: Path
) -> None:
    with proc_stack(hub_url, tmp_path) as stack:
        with stack.client() as client:
            assert client.post("/v1/collections", json={"name": "c0"}).status_code == 201
        # Creating 200 Edge collections takes ~0.8 s each (its fsyncs): clone the first one
        # on disk and in Redis while the API is down, as if they had been created.
        stack.stop("api")
        state = stack.state()
        seed = state.get_collection("team-a", "c0")
        qdrant = tmp_path / "qdrant"
        for n in range(1, COLLECTIONS):
            rec = seed.model_copy(
                update={"name": f"c{n}", "store": store_name_for("team-a", f"c{n}")}
            )
            shutil.copytree(qdrant / seed.store_name, qdrant / rec.store_name)
            spec_file = qdrant / rec.store_name / "collection.json"
            spec = json.loads(spec_file.read_text())
            spec_file.write_text(json.dumps({**spec, "name": rec.store_name}))
            state.create_collection(rec)
        state.close()
        stack.start_api()
        api = psutil.Process(stack.procs["api"].pid)
        with stack.client() as client, ThreadPoolExecutor(4) as pool:

            def read(n: int) -> int:
                return client.get(f"/v1/collections/c{n}").status_code

            assert set(pool.map(read, range(COLLECTIONS))) == {200}  # each one opened once
        threads, rss_mib = api.num_threads(), api.memory_info().rss / 2**20
        assert threads < 100, threads
        assert rss_mib < 1024, rss_mib
