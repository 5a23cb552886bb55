"""``sieve up`` as a supervisor: it refuses a taken port, restarts a crashed child, and
``kill -9`` of the supervisor itself leaves nothing running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.servers import free_port

pytestmark = pytest.mark.slow

_SIEVE = str(Path(sys.executable).parent / "sieve")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SIEVE_")}


def test_a_taken_port_is_refused_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        out = subprocess.run(
            [_SIEVE, "up", "--data-dir", str(tmp_path), "--port", str(port), "--no-sample"],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert out.returncode == 1
    assert f"port {port} (api)" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def _children(pid: int, part: str) -> list[psutil.Process]:
    out = []
    for proc in psutil.Process(pid).children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and part in " ".join(proc.cmdline()):
                out.append(proc)
        except psutil.Error:  # gone (or a zombie) meanwhile
            continue
    return out


def test_a_crashed_worker_is_restarted_and_kill_9_of_up_stops_everything(
    tmp_path: Path,
) -> None:
    port, hub_port = free_port(), free_port()
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [
            *(_SIEVE, "up", "--data-dir", str(tmp_path / "data"), "--port", str(port)),
            *("--hub-port", str(hub_port), "--no-sample"),
        ],
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 240
        while b"ready." not in (tmp_path / "up.log").read_bytes():
            assert up.poll() is None, (tmp_path / "up.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "up.log").read_text()
            time.sleep(0.5)
        (worker,) = [p for p in _children(up.pid, "celery") if p.ppid() == up.pid]
        family = psutil.Process(up.pid).children(recursive=True)
        os.killpg(worker.pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while not [p for p in _children(up.pid, "celery") if p.pid != worker.pid]:
            assert up.poll() is None, "sieve up stopped when its worker died"
            assert time.monotonic() < deadline, (tmp_path / "up.log").read_text()
            time.sleep(0.2)
        assert "worker exited with code" in (tmp_path / "up.log").read_text()
        family = [p for p in psutil.Process(up.pid).children(recursive=True) if p.is_running()]
        assert len(family) >= 4  # redis, hub, api, worker (+ its pool)
        up.kill()  # kill -9 of the supervisor: no chance to stop anything itself
        up.wait(timeout=10)
        _, alive = psutil.wait_procs(family, timeout=60)
        assert not alive, [" ".join(p.cmdline()) for p in alive]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))  # the API's port is free again
    finally:
        for proc in family:
            if proc.is_running():
                proc.kill()
        if up.poll() is None:
            up.kill()
        log.close()
