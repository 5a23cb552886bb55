"""`make run` from the repository: the sample answers over HTTP; SIGTERM leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.servers import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_make_run_serves_the_sample_and_stops_cleanly(tmp_path: Path) -> None:
    port, hub_port = free_port(), free_port()
    out = (tmp_path / "up.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIEVE_")}
    family: list[psutil.Process] = []
    proc = subprocess.Popen(
        [
            "make",
            "-s",
            "run",
            f"ARGS=--data-dir {tmp_path / 'data'} --port {port} --hub-port {hub_port}",
        ],
        cwd=REPO,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while b"ready." not in (tmp_path / "up.log").read_bytes():
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "up.log").read_text()
            time.sleep(0.5)
        resp = httpx.post(
            f"http://127.0.0.1:{port}/v1/collections/sample/query",
            json={"query": "how do plants make sugar from light", "top_n": 3},
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["results"][0]["source"] == "photosynthesis.md"
        assert body["rerank"]["status"] == "ok"
        # The console is served by the same process, at the URL `sieve up` prints.
        console = f"http://127.0.0.1:{port}/console/"
        assert console in (tmp_path / "up.log").read_text()
        assert "Sieve console" in httpx.get(console, timeout=10).text
        root = psutil.Process(proc.pid)
        family = [root, *root.children(recursive=True)]
        names = " ".join(" ".join(p.cmdline()) for p in family if p.is_running())
        for part in ("sieve up", "modelhub", "sieve api", "celery", "valkey-server"):
            assert part in names, names
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            # The supervisor's own stop budget is 45 s + 15 s plus kill waits: well inside this.
            proc.wait(timeout=150)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("sieve up did not stop within 150 s\n" + _logs(tmp_path))
        finally:
            out.close()
    _, alive = psutil.wait_procs(family, timeout=10)
    assert alive == [], [p.cmdline() for p in alive]
    log = (tmp_path / "up.log").read_text()
    # The last line, not a stage's "sieve up: stopped api, worker in 1.5s".
    assert "sieve up: stopped" in log.splitlines(), _logs(tmp_path)
    assert (tmp_path / "data" / "redis" / "appendonlydir").is_dir()


def _logs(tmp_path: Path) -> str:
    """What `sieve up` and each child wrote, the children's tails only."""
    parts = [(tmp_path / "up.log").read_text(errors="replace")]
    for child in sorted((tmp_path / "data" / "logs").glob("*.log")):
        tail = child.read_text(errors="replace").splitlines()[-15:]
        parts.append(f"--- {child.name}\n" + "\n".join(tail))
    return "\n".join(parts)
