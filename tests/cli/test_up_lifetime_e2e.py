"""``sieve up`` (and ``make run``) as users stop and start it: a stop after ``Connection: close``
requests is followed at once by a ready restart on the same ports, and a ``kill -9`` of the
supervisor during an ingest leaves no child and no port behind within 5 s, after which a
restart finishes the ingest with exactly the chunk set a clean ingest gives.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from core.net import port_taken
from indexing.records import store_name_for
from retriever.edge_store import EdgeChunkStore
from services.api.auth import OPEN_TENANT
from tests.indexing.procstack import expected_point_ids
from tests.servers import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
_SIEVE = str(Path(sys.executable).parent / "sieve")
# The supervisor's parent-death promise, for every child and the worker's pool.
_GONE_WITHIN_S = 5.0


@dataclass
class Up:
    """One run of the launcher (``sieve up`` or ``make run``) and its log."""

    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        """What the launcher has printed so far."""
        return self.log.read_text(errors="replace")

    def family(self) -> list[psutil.Process]:
        """The launcher and every process below it (``make``, ``sieve up``, children, pool)."""
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]


@dataclass(frozen=True)
class Ports:
    """The ports of one stack, kept across its restarts."""

    api: int
    hub: int
    redis: int

    def all(self) -> list[int]:
        """Every port the stack listens on."""
        return [self.api, self.hub, self.redis]


def _argv(launcher: str, data: Path, ports: Ports) -> list[str]:
    args = [
        *("--data-dir", str(data), "--port", str(ports.api), "--hub-port", str(ports.hub)),
        *("--redis-port", str(ports.redis), "--no-sample"),
    ]
    if launcher == "make":
        return ["make", "-s", "run", "ARGS=" + " ".join(args)]
    return [_SIEVE, "up", *args]


@contextmanager
def _up(launcher: str, root: Path, ports: Ports, run: int) -> Iterator[Up]:
    """Start the launcher in its own process group; wait for ``ready.``; clean up at the end."""
    log = root / f"up-{run}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            _argv(launcher, root / "data", ports),
            cwd=REPO,
            env={k: v for k, v in os.environ.items() if not k.startswith("SIEVE_")},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    up = Up(proc, log)
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 240
        while "ready." not in up.text():
            assert proc.poll() is None, _logs(root, up)
            assert time.monotonic() < deadline, _logs(root, up)
            time.sleep(0.2)
        family = up.family()
        yield up
    finally:
        for p in [*family, *_alive(up)]:
            if p.is_running():
                p.kill()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _alive(up: Up) -> list[psutil.Process]:
    try:
        return up.family()
    except psutil.NoSuchProcess:
        return []


def _running(proc: psutil.Process) -> bool:
    """Alive and not a zombie waiting to be reaped by a parent that is itself gone."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _logs(root: Path, up: Up, lines: int = 15) -> str:
    parts = [up.text()]
    for child in sorted((root / "data" / "logs").glob("*.log")):
        tail = child.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {child.name}\n" + "\n".join(tail))
    return "\n".join(parts)


def _stop(up: Up, root: Path, timeout_s: float = 150) -> None:
    """SIGTERM the launcher's group and wait for it to exit. If it does not, every Sieve
    process still in the family prints its threads' stacks (SIGUSR1) into its log, and the
    failure shows them with the processes left and their states."""
    family = _alive(up)
    os.killpg(up.proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        up.proc.wait(timeout=timeout_s)
    if up.proc.returncode is not None:
        return
    left = [p for p in family if _running(p)]
    for p in left:
        with contextlib.suppress(psutil.Error):
            # Only `sieve ...` and `celery ...` (console scripts: the interpreter, then the
            # script) handle USR1; it would end make, a shell or valkey-server.
            if any(Path(arg).name in ("sieve", "celery") for arg in p.cmdline()[:2]):
                p.send_signal(signal.SIGUSR1)
    time.sleep(2)
    procs = []
    for p in left:
        with contextlib.suppress(psutil.Error):
            procs.append(f"{p.pid} {p.status()} {' '.join(p.cmdline())[:160]}")
    pytest.fail(
        f"the launcher did not exit within {timeout_s:.0f}s of SIGTERM; left:\n"
        + "\n".join(procs)
        + "\n"
        + _logs(root, up, lines=60)
    )


def _time_wait_on(port: int) -> int:
    return sum(
        1
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_TIME_WAIT and c.laddr and c.laddr.port == port
    )


def _records(n: int) -> dict[str, dict[str, Any]]:
    words = ["cell", "membrane", "protein", "enzyme", "receptor", "signal", "kinase", "ligand"]
    return {
        f"doc-{i:03d}": {
            "title": f"Report {i}",
            "text": "\n\n".join(
                f"doc {i} section {p}: "
                + " ".join(words[(i + p + k) % len(words)] for k in range(90))
                for p in range(4)
            ),
        }
        for i in range(n)
    }


@pytest.mark.timeout(900)  # two stack start-ups, on shared busy cores
@pytest.mark.parametrize("launcher", ["sieve", "make"])
def test_a_stop_after_connection_close_requests_restarts_at_once(
    launcher: str, tmp_path: Path
) -> None:
    ports = Ports(free_port(), free_port(), free_port())
    api = f"http://127.0.0.1:{ports.api}"
    with _up(launcher, tmp_path, ports, 1) as first:
        for _ in range(20):  # urllib sends Connection: close; the server closes first
            with urllib.request.urlopen(f"{api}/v1/collections", timeout=10) as resp:
                assert resp.status == 200
                assert resp.headers.get("Connection", "").lower() == "close"
        stopped = time.monotonic()
        _stop(first, tmp_path)
    # What the refusal met on the old main: the stopped server's connections in TIME_WAIT.
    assert _time_wait_on(ports.api) > 0
    with _up(launcher, tmp_path, ports, 2) as second:
        ready_s = time.monotonic() - stopped
        assert "already in use" not in second.text()
        assert httpx.get(f"{api}/readyz", timeout=10).status_code == 200
        print(f"\n{launcher}: SIGTERM to a ready restart on the same ports: {ready_s:.1f}s")
        _stop(second, tmp_path)


@pytest.mark.timeout(900)  # two stack start-ups and an ingest, on shared busy cores
@pytest.mark.parametrize("launcher", ["sieve", "make"])
def test_kill_9_during_an_ingest_leaves_nothing_and_a_restart_finishes_it(
    launcher: str, tmp_path: Path
) -> None:
    ports = Ports(free_port(), free_port(), free_port())
    api = f"http://127.0.0.1:{ports.api}"
    records = _records(40)
    with _up(launcher, tmp_path, ports, 1) as first, httpx.Client(base_url=api, timeout=60) as c:
        assert c.post("/v1/collections", json={"name": "reports"}).status_code == 201
        jobs = []
        for start in range(0, len(records), 10):
            batch = list(records.items())[start : start + 10]
            body = {"documents": [{"id": i, **r} for i, r in batch]}
            resp = c.post("/v1/collections/reports/documents", json=body)
            assert resp.status_code == 202, resp.text
            jobs.append(resp.json()["job_id"])
        # Under load: the first job is being worked on, the rest are still queued.
        deadline = time.monotonic() + 120
        while c.get(f"/v1/jobs/{jobs[0]}").json()["counts"].get("indexed", 0) < 1:
            assert time.monotonic() < deadline, _logs(tmp_path, first)
            time.sleep(0.05)
        family = first.family()
        pool = [
            p for p in family if "celery" in " ".join(p.cmdline()) and p.ppid() != first.proc.pid
        ]
        assert pool, "no worker pool process to check"
        os.killpg(first.proc.pid, signal.SIGKILL)  # the launcher's group: make and sieve up
        killed = time.monotonic()
        # Gone: no process left running, and every port free (a killed process shows as a
        # zombie as soon as its first thread exits, before its sockets are closed).
        alive, taken = family, ports.all()
        while (alive or taken) and time.monotonic() - killed < _GONE_WITHIN_S:
            alive = [p for p in alive if _running(p)]
            taken = [p for p in taken if port_taken("127.0.0.1", p)]
            time.sleep(0.02)
        gone_s = time.monotonic() - killed
        assert not alive, [" ".join(p.cmdline()) for p in alive]
        assert not taken, f"ports still taken {gone_s:.1f}s after the kill: {taken}"
        print(f"\n{launcher}: kill -9 to the last child gone: {gone_s:.2f}s")
    with _up(launcher, tmp_path, ports, 2) as second, httpx.Client(base_url=api, timeout=60) as c:
        deadline = time.monotonic() + 240
        while True:
            states = [c.get(f"/v1/jobs/{j}").json() for j in jobs]
            if all(s["state"] not in ("queued", "running") for s in states):
                break
            assert time.monotonic() < deadline, json.dumps(states)[:3000]
            time.sleep(0.5)
        assert [s["state"] for s in states] == ["completed"] * len(jobs), json.dumps(states)
        for doc_id in records:
            doc = c.get(f"/v1/collections/reports/documents/{doc_id}").json()
            assert doc["status"] == "indexed", doc
        _stop(second, tmp_path)
    # Only one process may open the Edge store: read it now that the stack is down.
    store_name = store_name_for(OPEN_TENANT, "reports")
    expected = expected_point_ids(store_name, records)
    store = EdgeChunkStore(tmp_path / "data" / "qdrant")
    try:
        assert store.count(store_name) == len(expected)
        assert {p.id for p in store.get(store_name, sorted(expected))} == expected
    finally:
        store.close()
