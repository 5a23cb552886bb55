"""The embedded stack for end-to-end tests: real Redis, real hub (behind a proxy we can make
fail), the API in-process over real HTTP (owning the Edge store), a real Celery worker process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import redis

from tests.servers import serve_in_thread
from tests.services.flaky_hub import FailurePlan, flaky_hub_app

__all__ = ["KEY_A", "KEY_B", "METRICS_KEY", "Stack", "open_api", "running_stack", "worker_argv"]

KEY_A = "tenant-a-key-0123456789"
KEY_B = "tenant-b-key-9876543210"
# /metrics counts every tenant: only this key opens it.
METRICS_KEY = "metrics-scrape-key-0123456789"


def worker_argv(name: str) -> list[str]:
    """A real Celery worker (prefork, one child) on the ingest queue, named ``name``."""
    return [
        str(Path(sys.executable).parent / "celery"),
        *("-A", "services.worker.app", "worker", "-Q", "ingest", "-c", "1"),
        *("--pool", "prefork", "--without-heartbeat", "--without-mingle", "--without-gossip"),
        *("-l", "WARNING", "-n", f"{name}@%h"),
    ]


@dataclass
class Stack:
    """Handles on the running stack."""

    api: str
    env: dict[str, str]
    plan: FailurePlan
    root: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)

    def client(self, key: str = KEY_A) -> httpx.Client:
        """An HTTP client for tenant A (or the given key)."""
        return httpx.Client(
            base_url=self.api, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

    def start_worker(self) -> subprocess.Popen[bytes]:
        """Start a real Celery worker process (prefork, one child) on the ingest queue."""
        log = (self.root / f"worker-{len(self.workers)}.log").open("wb")
        self.logs.append(log)
        proc = subprocess.Popen(
            worker_argv(f"w{len(self.workers)}"),
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(proc)
        return proc

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its children (a crash, not a shutdown)."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def wait_job(self, client: httpx.Client, job_id: str, timeout_s: float = 120) -> Any:
        """Poll a job until it has no document left in progress."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] not in ("queued", "running"):
                return job
            if time.monotonic() > deadline:
                pytest.fail(f"job {job_id} still {job['state']} after {timeout_s}s: {job}")
            time.sleep(0.2)


@contextmanager
def running_stack(redis_url: str, hub_url: str, root: Path, **extra_env: str) -> Iterator[Stack]:
    """Start proxy, API and one worker with a fresh data directory under ``root``."""
    plan = FailurePlan()
    with redis.Redis.from_url(redis_url) as fresh:
        fresh.flushdb()
    with ExitStack() as stack:
        proxy = stack.enter_context(
            serve_in_thread(flaky_hub_app(hub_url.removesuffix("/v1"), plan), lifespan="off")
        )
        env = {
            **os.environ,
            "SIEVE_REDIS_URL": redis_url,
            "SIEVE_MODEL_BASE_URL": f"{proxy}/v1",
            "SIEVE_MODEL_REQUESTS_PER_SECOND": "50",
            "SIEVE_MODEL_MAX_RETRIES": "6",
            "SIEVE_QDRANT_PATH": str(root / "qdrant"),
            "SIEVE_INGEST_BLOB_DIR": str(root / "blobs"),
            "SIEVE_BUNDLE_DIR": str(root / "bundles"),
            "SIEVE_API_KEYS": f'{{"team-a": "{KEY_A}", "team-b": "{KEY_B}"}}',
            "SIEVE_API_METRICS_KEY": METRICS_KEY,
            "SIEVE_WORKER_TASK_TIME_LIMIT_S": "120",
            "SIEVE_WORKER_VISIBILITY_TIMEOUT_S": "150",
            "SIEVE_LOG_JSON": "false",
            "SIEVE_LOG_LEVEL": "WARNING",
            **extra_env,
        }
        mp = stack.enter_context(pytest.MonkeyPatch.context())
        for key, value in env.items():
            if key.startswith("SIEVE_"):
                mp.setenv(key, value)
        from services.api.main import build_app  # noqa: PLC0415 - reads the env just set

        api = stack.enter_context(serve_in_thread(build_app()))
        handle = Stack(api=api, env=env, plan=plan, root=root)
        handle.start_worker()
        try:
            yield handle
        finally:
            for proc in handle.workers:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
            for log in handle.logs:
                log.close()


@contextmanager
def open_api(redis_url: str, hub_url: str, root: Path, **extra_env: str) -> Iterator[str]:
    """An API in open mode (no keys, loopback) on Redis database 1 and its own store.

    No worker: uploads are accepted and queued, never indexed. Yields the base URL.
    """
    own_db = redis_url.rsplit("/", 1)[0] + "/1"
    with redis.Redis.from_url(own_db) as fresh:
        fresh.flushdb()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {
            "SIEVE_API_KEYS": "{}",
            "SIEVE_REDIS_URL": own_db,
            "SIEVE_MODEL_BASE_URL": hub_url,
            "SIEVE_QDRANT_PATH": str(root / "qdrant"),
            "SIEVE_INGEST_BLOB_DIR": str(root / "blobs"),
            "SIEVE_BUNDLE_DIR": str(root / "bundles"),
            "SIEVE_LOG_JSON": "false",
            "SIEVE_LOG_LEVEL": "WARNING",
            **extra_env,
        }.items():
            mp.setenv(key, value)
        from services.api.main import build_app  # noqa: PLC0415 - reads the env just set

        with serve_in_thread(build_app()) as url:
            yield url
