"""A stop must not wait for Redis: with Redis gone (crashed, or stopped first), SIGTERM
ends the API and the worker at once, not after a broker-reconnect backoff."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.indexing.procstack import proc_stack

pytestmark = pytest.mark.slow

# Celery's reconnect backoff grows to tens of seconds; a stop that waited on it took 30 s.
_PROMPT_S = 10.0


def test_sigterm_ends_the_api_and_the_worker_at_once_while_redis_is_gone(
    hub_url: str, tmp_path: Path
) -> None:
    with proc_stack(hub_url, tmp_path) as stack:
        stack.kill("redis")
        time.sleep(3)  # both see the broker gone and start reconnecting
        for name in ("api", "worker"):
            if not stack.stop(name, timeout_s=_PROMPT_S):
                log = (tmp_path / f"{name}.log").read_text()[-3000:]
                pytest.fail(f"{name} still running {_PROMPT_S} s after SIGTERM:\n{log}")
