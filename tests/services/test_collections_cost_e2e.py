"""200 collections in the real API process (``sieve api``, the Edge store's owner) cost fewer
than 100 threads and less than 1 GiB: each was 8 threads and ~28 MiB for good (1,602
threads, 5.6 GiB)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.collections import grow_and_measure
from tests.indexing.procstack import proc_stack

pytestmark = pytest.mark.slow


def test_two_hundred_collections_cost_bounded_threads_and_memory(
    hub_url: str, tmp_path: Path
) -> None:
    with proc_stack(hub_url, tmp_path, SIEVE_QUOTA_COLLECTIONS="250") as stack:
        with stack.client() as client:
            rows = grow_and_measure(client, stack.procs["api"].pid, [200])
        [row] = rows
        assert row.threads < 100, row
        assert row.rss_mib < 1024, row
